"""Shared by the interop test scripts: CIFAR-10 binary files, safetensors files, torchvision models."""
import json
import os
import struct
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))


def read_cifar(path, limit=0):
    """A CIFAR-10 .bin file -> (uint8 [N, 3, 32, 32], int64 [N])."""
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    if limit:
        raw = raw[:limit]
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))


def fit_channel_normalizer(data_dir):
    """What a new resnet-train run (and resnet-eval --weights) fits: per-channel mean and
    unbiased std over all training pixels, from images / 255."""
    images = torch.cat([read_cifar(os.path.join(data_dir, f"data_batch_{i}.bin"))[0] for i in range(1, 6)])
    x = images.double() / 255
    mean = x.mean((0, 2, 3))
    std = x.transpose(0, 1).reshape(3, -1).std(1)
    return mean.float().view(1, 3, 1, 1), std.float().view(1, 3, 1, 1)


def load_safetensors(path):
    """A .safetensors file read with the safetensors package, as users read them."""
    from safetensors.torch import load_file
    return load_file(path)


def torchvision_model(depth, num_classes, stem="imagenet"):
    import torch.nn as nn
    import torchvision
    model = getattr(torchvision.models, f"resnet{depth}")(num_classes=num_classes)
    if stem == "cifar":  # our "cifar" stem: 3x3/1 conv, no max-pool
        model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    return model


def randomise(model, seed):
    """Random BN parameters and statistics on top of the default (random) conv and fc init, so that
    equal logits mean every buffer was carried over. Gentle values: a random network whose logits
    reach 1e3 turns fp32 rounding alone into differences above 1e-4."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() == 1 and name.endswith("weight"):   # BN gamma
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.25)
            elif t.dim() == 1 and not name.startswith("fc"):  # BN beta, running_mean
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)


def briefly_train(model, images, labels, steps=2, lr=0.01):
    """A few SGD steps in train mode (BN running statistics move by its momentum, as in any
    training), then eval mode."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        opt.step()
    model.eval()
