"""A resnet-train checkpoint read in plain Python (cifar_resnet.read_checkpoint, no resnet-train
code): the weights load strictly into cifar_resnet.ResNet and, with the stored normaliser, give
resnet-eval's logits on the first N test images. Prints "max_abs_diff X"; exit 1 if X > --tol.
The safetensors package reads the same file: every tensor bit for bit what read_checkpoint gave,
and the run's JSON document in its metadata (prints "safetensors package: ...").

  check_checkpoint.py --checkpoint RUN/checkpoints/last.ckpt --data DIR --logits L.pt [--limit 64]
"""
import argparse
import os
import sys

import torch

from common import read_cifar

import cifar_resnet

p = argparse.ArgumentParser()
p.add_argument("--checkpoint", required=True)
p.add_argument("--data", required=True)
p.add_argument("--logits", required=True)
p.add_argument("--limit", type=int, default=64)
p.add_argument("--tol", type=float, default=1e-4)
a = p.parse_args()

torch.set_num_threads(1)
ckpt = cifar_resnet.read_checkpoint(a.checkpoint)
assert ckpt["format"] == "resnet-train-checkpoint" and ckpt["version"] == 2, (ckpt["format"], ckpt["version"])
model = cifar_resnet.ResNet(**ckpt["config"]["model"])
model.load_state_dict(ckpt["model"], strict=True)
names = [n for n, _ in model.named_parameters()]
assert sorted(ckpt["momentum"]) == sorted(names), "momentum buffers are not one per parameter"
model.eval()
images, labels = read_cifar(os.path.join(a.data, "test_batch.bin"), a.limit)
n = ckpt["normalizer"]
with torch.no_grad():
    logits = model((images.float() / 255 - n["mean"]) / n["std"])
from safetensors import safe_open
from safetensors.torch import load_file
tensors = load_file(a.checkpoint)
ours = {f"{group}.{k}": v for group in ("model", "momentum", "normalizer") for k, v in ckpt[group].items()}
assert sorted(tensors) == sorted(ours), sorted(set(tensors) ^ set(ours))
for name, t in tensors.items():
    assert t.dtype == ours[name].dtype and torch.equal(t, ours[name]), name
with safe_open(a.checkpoint, "pt") as f:
    import json
    document = json.loads(f.metadata()["resnet_train_checkpoint"])
assert document["config"] == ckpt["config"] and document["state"] == ckpt["state"], "metadata differs"
import safetensors
print(f"safetensors package {safetensors.__version__}: {len(tensors)} tensors equal, metadata equal")
theirs = torch.load(a.logits, weights_only=True)
assert torch.equal(theirs["labels"], labels), "resnet-eval saw other images"
diff = (logits - theirs["logits"]).abs().max().item()
print(f"max_abs_diff {diff:.3g} at step {ckpt['state']['step']}")
sys.exit(0 if diff <= a.tol else 1)
