"""The networks of resnet-train in PyTorch, with the same state_dict keys (our "native" names).

    from cifar_resnet import ResNet, from_metadata
    model = ResNet(depth=56)                          # CIFAR ResNet-56, option A
    model.load_state_dict(torch.load("resnet56.pt", weights_only=True))
    wrn = ResNet(family="wide", depth=28, width=10)   # WRN-28-10

Mirrors src/models (families/*.cpp, layout.cpp, blocks.cpp); tests/test_python_mirror.cpp checks
every family against the C++ nets name by name and shape by shape.
  cifar (He et al. 2015 §4.2): 3x3 conv(16) -> 3 stages of n blocks at 16/32/64 filters (strides
    1/2/2) -> pool -> fc, depth = 6n+2 (basic blocks) or 9n+2 (bottlenecks, outputs 64/128/256).
  imagenet (§3.4): stem -> 4 stages at 64/128/256/512 -> pool -> fc (torchvision's ResNet-18..152;
    export those with --names torchvision to load them into torchvision.models itself).
  wide (Zagoruyko & Komodakis 2016, WRN-d-k): 3x3 conv(16) -> 3 stages of n pre-activation basic
    blocks at 16k/32k/64k -> BN + ReLU -> pool -> fc, depth = 6n+4, projections where the shape changes.
  post-activation block   y = relu(F(x) + s(x)),  F = bn2(conv2(relu(bn1(conv1(x)))))
  pre-activation block    y = F(x) + s(x),        F = conv2(relu(bn2(conv1(relu(bn1(x))))))
  residual=False: the plain twin, y = relu(F(x)) (pre-activation: F(x)), no shortcut modules.
  Shortcut where the shape changes: A = identity on a stride-2 subsample, zero-padded channels
  (no parameters; option_a_padding "after": the zeros after x's channels, "split": half before and
  half after, as akamaster/pytorch_resnet_cifar10 pads); B = 1x1 conv + BN only there; C = 1x1 conv
  + BN on every block. Pre-activation projections read relu(bn1(x)) and have no BN.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def _conv(cin, cout, kernel, stride):
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


def option_a_shortcut(x, stride, out_channels, split=False):
    s = x[:, :, ::stride, ::stride] if stride != 1 else x
    extra = out_channels - x.size(1)
    before = extra // 2 if split else 0
    return F.pad(s, (0, 0, 0, 0, before, extra - before)) if extra > 0 else s


class Block(nn.Module):
    """A chain of (conv, BN) layers; `widths` lists (kernel, in, out, stride) per layer."""

    def __init__(self, in_channels, planes, stride, expansion, layers, residual, shortcut, preact, pad_split=False):
        super().__init__()
        self.stride, self.out_channels, self.pad_split = stride, planes * expansion, pad_split
        self.residual, self.preact = residual, preact
        self.changes_shape = stride != 1 or in_channels != self.out_channels
        project = residual and (shortcut == "C" or (shortcut == "B" and self.changes_shape))
        # Registered first, as in blocks.cpp (the order of the state_dict follows registration).
        self.shortcut_conv = _conv(in_channels, self.out_channels, 1, stride) if project else None
        self.shortcut_bn = nn.BatchNorm2d(self.out_channels) if project and not preact else None
        self.n = len(layers)
        for k, (kernel, cin, cout, s) in enumerate(layers, start=1):
            setattr(self, f"conv{k}", _conv(cin, cout, kernel, s))
            # Pre-activation BNs normalise a layer's input, post-activation BNs its output.
            setattr(self, f"bn{k}", nn.BatchNorm2d(cin if preact else cout))

    def shortcut(self, x, pre):
        if self.shortcut_conv is not None:
            s = self.shortcut_conv(pre)
            return self.shortcut_bn(s) if self.shortcut_bn is not None else s
        return option_a_shortcut(x, self.stride, self.out_channels, self.pad_split) if self.changes_shape else x

    def forward(self, x):
        convs = [getattr(self, f"conv{k}") for k in range(1, self.n + 1)]
        bns = [getattr(self, f"bn{k}") for k in range(1, self.n + 1)]
        if self.preact:
            pre = F.relu(bns[0](x))
            o = pre
            for i, conv in enumerate(convs):
                if i > 0:
                    o = F.relu(bns[i](o))
                o = conv(o)
            return o + self.shortcut(x, pre) if self.residual else o
        o = x
        for i, (conv, bn) in enumerate(zip(convs, bns)):
            o = bn(conv(o))
            if i + 1 < len(convs):
                o = F.relu(o)
        return F.relu(o + self.shortcut(x, x) if self.residual else o)


def basic_block(cin, planes, stride, **kw):
    return Block(cin, planes, stride, 1, [(3, cin, planes, stride), (3, planes, planes, 1)], **kw)


def bottleneck(cin, planes, stride, **kw):
    # The stride sits on the 3x3 conv, as in torchvision ("ResNet v1.5").
    return Block(cin, planes, stride, 4,
                 [(1, cin, planes, 1), (3, planes, planes, stride), (1, planes, planes * 4, 1)], **kw)


def _cifar(depth, block, width):
    block = "basic" if block == "auto" else block
    per = 6 if block == "basic" else 9
    if depth < per + 2 or (depth - 2) % per:
        raise ValueError(f"depth {depth} is not {per}n+2")
    n = (depth - 2) // per
    return dict(block=block, stem="cifar", stem_channels=16, planes=[16, 32, 64], blocks=[n] * 3, preact=False,
                shortcut="A" if block == "basic" else "B")


def _imagenet(depth, block, width):
    block = ("basic" if depth in (18, 34) else "bottleneck") if block == "auto" else block
    return dict(block=block, stem="imagenet", stem_channels=64, planes=[64, 128, 256, 512],
                blocks=IMAGENET_BLOCKS[depth], preact=False, shortcut="B")


def _wide(depth, block, width):
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth {depth} is not 6n+4")
    n = (depth - 4) // 6
    return dict(block="basic", stem="cifar", stem_channels=16, planes=[16 * width, 32 * width, 64 * width],
                blocks=[n] * 3, preact=True, shortcut="B")


# model.family -> the stages and "auto" choices of that family (src/models/families/<name>.cpp).
FAMILIES = {"cifar": _cifar, "imagenet": _imagenet, "wide": _wide}


class ResNet(nn.Module):
    def __init__(self, family="cifar", depth=20, residual=True, shortcut="auto", block="auto", preact="auto",
                 stem="auto", num_classes=10, option_a_padding="after", width=1, **_ignored):
        super().__init__()
        f = FAMILIES[family](depth, block, width)
        block = f["block"]
        stem = f["stem"] if stem == "auto" else stem
        preact = f["preact"] if preact == "auto" else preact
        shortcut = f["shortcut"] if shortcut == "auto" else shortcut
        stem_channels, planes, blocks = f["stem_channels"], f["planes"], f["blocks"]
        self.imagenet_stem, self.preact = stem == "imagenet", preact
        kernel = 7 if self.imagenet_stem else 3
        self.stem_conv = nn.Conv2d(3, stem_channels, kernel, stride=2 if self.imagenet_stem else 1,
                                   padding=kernel // 2, bias=False)
        self.stem_bn = None if preact else nn.BatchNorm2d(stem_channels)
        make = basic_block if block == "basic" else bottleneck
        expansion = 1 if block == "basic" else 4
        channels, i = stem_channels, 0
        for s, (p, count) in enumerate(zip(planes, blocks)):
            for b in range(count):
                stride = 2 if s > 0 and b == 0 else 1
                setattr(self, f"block{i}", make(channels, p, stride, residual=residual, shortcut=shortcut,
                                                preact=preact, pad_split=option_a_padding == "split"))
                channels, i = p * expansion, i + 1
        self.num_blocks = i
        self.final_bn = nn.BatchNorm2d(channels) if preact else None
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.stem_conv(x)
        if self.stem_bn is not None:
            x = F.relu(self.stem_bn(x))
        if self.imagenet_stem:
            x = F.max_pool2d(x, 3, 2, 1)
        for i in range(self.num_blocks):
            x = getattr(self, f"block{i}")(x)
        if self.final_bn is not None:
            x = F.relu(self.final_bn(x))
        return self.fc(x.mean((2, 3)))


def from_metadata(metadata):
    """The network an export's metadata["model"] (a resnet-train model config) describes."""
    return ResNet(**metadata["model"])


def normalize(images_uint8, metadata):
    """uint8 [N, 3, 32, 32] -> the float input the exported network was trained on."""
    n = metadata["normalizer"]
    mean = torch.tensor(n["mean"]).view(n["mean_shape"])
    std = torch.tensor(n["std"]).view(n["std_shape"])
    return (images_uint8.float() / 255 - mean) / std


def read_metadata(path):
    """Our metadata from a .pt (zip record extra/resnet_train.json) or .safetensors export."""
    import json
    import struct
    import zipfile
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("/extra/resnet_train.json")]
            return json.loads(z.read(names[0])) if names else {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = header.get("__metadata__", {})
    return json.loads(meta["resnet_train"]) if "resnet_train" in meta else {}


def read_checkpoint(path):
    """A resnet-train checkpoint (RUN/checkpoints/last.ckpt, format version 2) in plain Python.

    The file is safetensors: an 8-byte little-endian header length, a JSON header naming each
    tensor's dtype, shape and byte range, then the raw data. Nothing in it is code. Returns a dict:
      "model"      {name: tensor}: every parameter and buffer, ready for ResNet.load_state_dict
      "momentum"   {parameter name: SGD momentum buffer}
      "normalizer" {"mean": tensor, "std": tensor}: inputs are (x / 255 - mean) / std
      "config", "state", "data_fingerprint", "changes", "format", "version": the run's JSON document

        ckpt = read_checkpoint("runs/cifar_resnet56/checkpoints/last.ckpt")
        model = ResNet(**ckpt["config"]["model"]); model.load_state_dict(ckpt["model"])
    (The safetensors package reads it too: safetensors.torch.load_file(path) and
    safe_open(path, "pt").metadata()["resnet_train_checkpoint"].)
    """
    import json
    import struct
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    if "resnet_train_checkpoint" not in meta:
        raise ValueError(f"{path}: not a resnet-train checkpoint (version 1 files are TorchScript archives: "
                         "resume the run once with a current resnet-train to rewrite it)")
    out = json.loads(meta["resnet_train_checkpoint"])
    dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I64": torch.int64}
    out.update(model={}, momentum={}, normalizer={})
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = dtypes[entry["dtype"]]
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        group, _, key = name.partition(".")
        out[group][key] = flat.reshape(entry["shape"])
    return out
