"""Python -> C++: saves random, briefly trained weights as users do (torch.save(model.state_dict()), an
OrderedDict; a plain dict; the legacy non-zip format), and the logits and test error of the first N test images,
normalised the way resnet-eval --weights normalises for a file without our metadata.

  make_python_weights.py --out DIR --data DIR [--limit 64] [--only NAME...]
Writes DIR/<name>.pt, DIR/<name>_logits.pt ({"logits"}), DIR/<name>.json ({"error"}).
"""
import argparse
import json
import os

import torch

from common import briefly_train, fit_channel_normalizer, randomise, read_cifar, torchvision_model

import cifar_resnet


class Evil:
    """What a hostile .pt does: unpickling calls os.system."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


MODELS = {
    # name: (constructor, how torch.save writes it: "ordered" (model.state_dict()), "dict" or "legacy"
    # (the pre-1.6 format, _use_new_zipfile_serialization=False: not a zip))
    "tv_resnet18": (lambda: torchvision_model(18, 10), "ordered"),
    "tv_resnet50": (lambda: torchvision_model(50, 10), "dict"),
    "cifar_resnet56": (lambda: cifar_resnet.ResNet(depth=56), "ordered"),
    "tv_resnet18_imagenet": (lambda: torchvision_model(18, 1000), "ordered"),  # for fine-tuning
    "cifar_resnet20_legacy": (lambda: cifar_resnet.ResNet(depth=20), "legacy"),
}

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--data", required=True)
p.add_argument("--limit", type=int, default=64)
p.add_argument("--only", nargs="*")
a = p.parse_args()
torch.set_num_threads(1)
os.makedirs(a.out, exist_ok=True)

mean, std = fit_channel_normalizer(a.data)
images, labels = read_cifar(os.path.join(a.data, "test_batch.bin"), a.limit)
x = (images.float() / 255 - mean) / std
train_images, train_labels = read_cifar(os.path.join(a.data, "data_batch_1.bin"))
train_x = (train_images.float() / 255 - mean) / std
for seed, (name, (make, how)) in enumerate(MODELS.items()):
    if a.only and name not in a.only:
        continue
    torch.manual_seed(seed)
    model = make()
    randomise(model, seed)
    briefly_train(model, train_x, train_labels)
    sd = model.state_dict()
    path = os.path.join(a.out, name + ".pt")
    if how == "legacy":
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(dict(sd) if how == "dict" else sd, path)
    if name.endswith("_imagenet"):
        continue
    with torch.no_grad():
        logits = model(x)
    torch.save({"logits": logits}, os.path.join(a.out, name + "_logits.pt"))
    error = (logits.argmax(1) != labels).float().mean().item()
    with open(os.path.join(a.out, name + ".json"), "w") as f:
        json.dump({"error": error}, f)
if not a.only or "evil" in a.only:
    torch.save({"fc.weight": torch.zeros(1), "x": Evil()}, os.path.join(a.out, "evil.pt"))
