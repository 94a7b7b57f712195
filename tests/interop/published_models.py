"""Python -> C++ for the weights people publish: the networks of the widely used CIFAR ResNet codes,
written for these tests after each code's published architecture (read, not copied), with random
weights and randomised BN statistics, saved the ways those codes save them, plus their logits on
the first N test images, normalised the way each code normalises.

  published_models.py --out DIR --data DIR [--limit 64] [--real DIR] [--real-limit 1000]
                      [--real-only NAME...] [--formats zip [legacy]] [--only NAME...]

For each model NAME and save FORMAT it writes DIR/NAME.FORMAT.{plain,module_state_dict,module_model}.pt:
  plain              model.state_dict()                                   (what chenyaofo publishes)
  module_state_dict  {"state_dict": DataParallel(model).state_dict(), "best_prec1": 0-d tensor, "epoch"}
                                                                          (akamaster's trainer.py)
  module_model       {"model": <"module."-prefixed state_dict>, "epoch": 3}
and DIR/NAME_logits.pt ({"logits"} on --data's first --limit test images) and DIR/NAME.json
({"error_real": the top-1 error on the first --real-limit images of --real, or null}).
FORMAT "zip" is torch.save's default; "legacy" is _use_new_zipfile_serialization=False.
"""
import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import randomise, read_cifar

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
CIFAR = ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])  # kuangliu's and chenyaofo's constants
FORMATS = {"zip": {}, "legacy": {"_use_new_zipfile_serialization": False}}


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def projection(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class SplitZeroPad(nn.Module):
    """akamaster's option A: every other pixel, planes // 4 zero channels on each side of x."""

    def __init__(self, planes):
        super().__init__()
        self.side = planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.side, self.side))


class Basic(nn.Module):
    """conv1/bn1/conv2/bn2, y = relu(F(x) + s(x)); s is registered under the code's own name
    (`shortcut` or `downsample`): empty, a parameter-free pad, or conv + BN (.0/.1)."""

    def __init__(self, cin, planes, stride, option, shortcut_name):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.shortcut_name = shortcut_name
        changes = stride != 1 or cin != planes
        s = nn.Sequential()
        if changes:
            s = SplitZeroPad(planes) if option == "A" else projection(cin, planes, stride)
        setattr(self, shortcut_name, s)

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + getattr(self, self.shortcut_name)(x))


class CifarStyleResNet(nn.Module):
    """conv1 (3x3) + bn1, stages layer1..layerS of Basic blocks, global average pool, `head`."""

    def __init__(self, widths, blocks, option, shortcut_name, head):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(3, widths[0]), nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for s, (planes, n) in enumerate(zip(widths, blocks), start=1):
            layers = []
            for b in range(n):
                stride = 2 if s > 1 and b == 0 else 1
                layers.append(Basic(cin, planes, stride, option, shortcut_name))
                cin = planes
            setattr(self, f"layer{s}", nn.Sequential(*layers))
        self.stages = len(widths)
        self.head = head
        setattr(self, head, nn.Linear(cin, 10))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        for s in range(1, self.stages + 1):
            out = getattr(self, f"layer{s}")(out)
        out = F.avg_pool2d(out, out.size(3)).flatten(1)  # 32x32 in: kuangliu's avg_pool2d(out, 4)
        return getattr(self, self.head)(out)


def cifar_depth(depth):
    return [(depth - 2) // 6] * 3


# name: (constructor, normaliser (mean, std), resnet-eval flags beyond the README row's)
MODELS = {
    # akamaster/pytorch_resnet_cifar10: resnet20 ... resnet1202, option A split, `linear`.
    "akamaster_resnet20": (lambda: CifarStyleResNet([16, 32, 64], cifar_depth(20), "A", "shortcut", "linear"), IMAGENET),
    "akamaster_resnet56": (lambda: CifarStyleResNet([16, 32, 64], cifar_depth(56), "A", "shortcut", "linear"), IMAGENET),
    # kuangliu/pytorch-cifar: ResNet18 = BasicBlock [2, 2, 2, 2] at 64..512, 3x3 stem, `linear`.
    "kuangliu_resnet18": (lambda: CifarStyleResNet([64, 128, 256, 512], [2, 2, 2, 2], "B", "shortcut", "linear"), CIFAR),
    # chenyaofo/pytorch-cifar-models: cifar10_resnet20 ... 56, projections as `downsample`, `fc`.
    "chenyaofo_resnet20": (lambda: CifarStyleResNet([16, 32, 64], cifar_depth(20), "B", "downsample", "fc"), CIFAR),
    # The mixed names forks of those codes write.
    "fork_shortcut_fc": (lambda: CifarStyleResNet([16, 32, 64], cifar_depth(20), "B", "shortcut", "fc"), CIFAR),
    "fork_downsample_linear": (lambda: CifarStyleResNet([16, 32, 64], cifar_depth(20), "B", "downsample", "linear"), CIFAR),
}


def normalize(images, normaliser):
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in normaliser)
    return (images.float() / 255 - mean) / std


def save(model, out, name, fmt):
    sd = model.state_dict()
    wrapped = nn.DataParallel(model).state_dict()  # "module." on every key, as on a GPU box
    kw = FORMATS[fmt]
    torch.save(sd, os.path.join(out, f"{name}.{fmt}.plain.pt"), **kw)
    # best_prec1 as a 0-d tensor, as akamaster's trainer (PyTorch 0.4 era) kept it: a tensor beside
    # the wrapped state_dict, which the reader must not take for the state_dict.
    torch.save({"state_dict": wrapped, "best_prec1": torch.tensor(91.73), "epoch": 200},
               os.path.join(out, f"{name}.{fmt}.module_state_dict.pt"), **kw)
    torch.save({"model": wrapped, "epoch": 3}, os.path.join(out, f"{name}.{fmt}.module_model.pt"), **kw)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--real")
    p.add_argument("--real-limit", type=int, default=1000)
    p.add_argument("--real-only", nargs="*", help="the models whose --real error to compute (default: all)")
    p.add_argument("--formats", nargs="+", default=["zip"], choices=sorted(FORMATS))
    p.add_argument("--only", nargs="*")
    a = p.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    images, _ = read_cifar(os.path.join(a.data, "test_batch.bin"), a.limit)
    real = read_cifar(os.path.join(a.real, "test_batch.bin"), a.real_limit) if a.real else None
    for seed, (name, (make, normaliser)) in enumerate(MODELS.items()):
        if a.only and name not in a.only:
            continue
        if a.real_only is not None and name not in a.real_only:
            real_here = None
        else:
            real_here = real
        torch.manual_seed(seed)
        model = make()
        randomise(model, seed)
        model.eval()
        for fmt in a.formats:
            save(model, a.out, name, fmt)
        with torch.no_grad():
            torch.save({"logits": model(normalize(images, normaliser))}, os.path.join(a.out, name + "_logits.pt"))
            error = None
            if real_here is not None:
                x = normalize(real[0], normaliser)  # in batches of 50: 1,000 at once is 10x slower here
                predicted = torch.cat([model(x[i:i + 50]).argmax(1) for i in range(0, len(x), 50)])
                error = int((predicted != real[1]).sum()) / len(real[1])
        with open(os.path.join(a.out, name + ".json"), "w") as f:
            json.dump({"error_real": error}, f)


if __name__ == "__main__":
    main()
