"""Shared by the analysis checks: a resnet-train checkpoint as a PyTorch model (python/cifar_resnet.py,
read-only) and the images resnet-analyze took (the first N of a split, normalised as trained)."""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "interop"))

from common import read_cifar  # noqa: E402  (also puts python/ on the path)

import cifar_resnet  # noqa: E402


def model_from_checkpoint(path):
    """(model in eval mode, checkpoint dict) from RUN/checkpoints/last.ckpt."""
    ckpt = cifar_resnet.read_checkpoint(path)
    model = cifar_resnet.ResNet(**ckpt["config"]["model"])
    model.load_state_dict(ckpt["model"], strict=True)
    return model.eval(), ckpt


def named_images(data_dir, split, count, ckpt):
    """The first `count` images of the split ("train": data_batch_1..5 in order), normalised with
    the checkpoint's normaliser, and their labels."""
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    images, labels = [], []
    for f in files:
        x, y = read_cifar(os.path.join(data_dir, f))
        images.append(x)
        labels.append(y)
    x, y = torch.cat(images)[:count], torch.cat(labels)[:count]
    n = ckpt["normalizer"]
    return (x.float() / 255 - n["mean"]) / n["std"], y
