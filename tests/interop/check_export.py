"""C++ -> Python: loads a resnet-export file the way a user would (torch.load(weights_only=True),
strict load_state_dict), runs the first N test images through it and compares the logits with
those resnet-eval wrote. Prints "max_abs_diff X"; exit 1 if X > --tol and X > 1e-5 of the largest
|logit| (our LibTorch and this torch may be other releases, which round fp32 convolutions apart).

  check_export.py --weights W.pt|W.safetensors --arch native|torchvision --data DIR
                  --logits L.pt [--limit 64] [--tol 1e-4] [--resave OUT.pt] [--same-weights ORIGINAL.pt]
"""
import argparse
import os
import sys

import torch

from common import load_safetensors, read_cifar, torchvision_model

import cifar_resnet

p = argparse.ArgumentParser()
p.add_argument("--weights", required=True)
p.add_argument("--arch", choices=["native", "torchvision"], required=True)
p.add_argument("--data", required=True)
p.add_argument("--logits", required=True)
p.add_argument("--limit", type=int, default=64)
p.add_argument("--tol", type=float, default=1e-4)
p.add_argument("--resave")
p.add_argument("--same-weights", help="a .pt whose parameters the file must hold bit for bit (BN's running "
                                       "statistics aside)")
a = p.parse_args()

torch.set_num_threads(1)
if a.weights.endswith(".safetensors"):
    sd = load_safetensors(a.weights)
else:
    sd = torch.load(a.weights, weights_only=True)
    assert type(sd) is dict, type(sd)
meta = cifar_resnet.read_metadata(a.weights)
if a.weights.endswith(".safetensors"):  # the package sees the same metadata
    import json
    from safetensors import safe_open
    with safe_open(a.weights, "pt") as f:
        assert json.loads(f.metadata()["resnet_train"]) == meta, "safetensors metadata differs"
assert meta["names"] == a.arch, meta["names"]
m = meta["model"]
if a.arch == "native":
    model = cifar_resnet.from_metadata(meta)
else:
    model = torchvision_model(m["depth"], m["num_classes"], m["stem"])
model.load_state_dict(sd, strict=True)
model.eval()

images, labels = read_cifar(os.path.join(a.data, "test_batch.bin"), a.limit)
with torch.no_grad():
    logits = model(cifar_resnet.normalize(images, meta))
theirs = torch.load(a.logits, weights_only=True)
assert torch.equal(theirs["labels"], labels), "resnet-eval saw other images"
diff = (logits - theirs["logits"]).abs().max().item()
print(f"max_abs_diff {diff:.3g} over {tuple(logits.shape)} logits (|logit| up to {logits.abs().max().item():.3g})")
if a.same_weights:
    original = torch.load(a.same_weights, weights_only=True)
    for name, t in original.items():
        if "running_" in name or name.endswith("num_batches_tracked"):
            continue
        assert torch.equal(sd[name], t), f"{name} differs from {a.same_weights}"
    print(f"weights as in {a.same_weights}")
if a.resave:  # what a user does next: model.state_dict() is an OrderedDict with _metadata
    torch.save(model.state_dict(), a.resave)
# fp32 rounding differs between torch releases: 1e-4, or 1e-5 of the logits' scale.
sys.exit(0 if diff <= max(a.tol, 1e-5 * logits.abs().max().item()) else 1)
