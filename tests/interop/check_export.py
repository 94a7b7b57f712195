"""C++ -> Python: loads a resnet-export file the way a user would (torch.load(weights_only=True),
strict load_state_dict), runs the first N test images through it and compares the logits with
those resnet-eval wrote. Prints "max_abs_diff X"; exit 1 if X > --tol.

  check_export.py --weights W.pt|W.safetensors --arch native|torchvision --data DIR
                  --logits L.pt [--limit 64] [--tol 1e-4] [--resave OUT.pt]
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
a = p.parse_args()

torch.set_num_threads(1)
if a.weights.endswith(".safetensors"):
    sd = load_safetensors(a.weights)
else:
    sd = torch.load(a.weights, weights_only=True)
    assert type(sd) is dict, type(sd)
meta = cifar_resnet.read_metadata(a.weights)
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
if a.resave:  # what a user does next: model.state_dict() is an OrderedDict with _metadata
    torch.save(model.state_dict(), a.resave)
sys.exit(0 if diff <= a.tol else 1)
