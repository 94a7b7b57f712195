#!/usr/bin/env python3
"""The usual Python PyTorch way of doing what resnet-bench times, for a comparison in one session.

  bare   model step on one fixed batch (forward, loss, backward, torch.optim.SGD), eager
  train  a whole run the usual way: torchvision transforms in a DataLoader with worker processes
         (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize), then one test evaluation
         (with --iterations 64000 --milestones 32000 48000: the paper's recipe, the accuracy reference)
  eval   test-set evaluation throughput
  convs  the network's convolutions alone, forward and backward (input and weight gradients, as
         autograd asks for them), at its own shapes: what resnet-bench --mode convs times, through
         this torch

Prints one JSON object, with the same keys as resnet-bench. The model is He et al.'s CIFAR ResNet
(option A shortcuts), written out here so nothing but torch/torchvision is needed.
"""
import argparse
import contextlib
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x
        if self.stride != 1 or self.extra:  # option A: subsample, zero-pad channels
            shortcut = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    def __init__(self, depth, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for width, stride in [(16, 1), (32, 2), (64, 2)]:
            for i in range(n):
                blocks.append(BasicBlock(cin, width, stride if i == 0 else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))


def read_cifar(path):
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)


class CifarDataset(torch.utils.data.Dataset):
    """HWC uint8 images through torchvision transforms, one sample at a time: the usual way."""

    def __init__(self, images, labels, transform):
        from PIL import Image
        self.images = [Image.fromarray(im.transpose(1, 2, 0)) for im in images]
        self.labels, self.transform = labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), int(self.labels[i])


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_convs(model, a, device, fmt):
    """Every convolution of one forward pass (hooks record input shapes), each distinct one timed
    alone: aten.convolution forward and aten.convolution_backward, summed over the network."""
    seen = {}

    def hook(m, inputs, output):
        x = inputs[0]
        key = (tuple(x.shape), tuple(m.weight.shape), m.stride, m.padding, m.dilation, m.groups, x.requires_grad)
        seen[key] = seen.get(key, 0) + 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    model(torch.randn(a.batch, 3, 32, 32, device=device))
    for h in handles:
        h.remove()
    dtype = torch.bfloat16 if a.bf16 else torch.float32
    conv, back = torch.ops.aten.convolution, torch.ops.aten.convolution_backward

    def per_call(fn):
        for _ in range(a.warmup):
            fn()
        sync(device)
        t = time.perf_counter()
        for _ in range(a.steps):
            fn()
        sync(device)
        return 1000 * (time.perf_counter() - t) / a.steps

    fwd = bwd = 0.0
    shapes = []
    with torch.no_grad():
        for (xs, ws, stride, padding, dilation, groups, input_grad), n in seen.items():
            x = torch.randn(xs, device=device, dtype=dtype).contiguous(memory_format=fmt)
            w = torch.randn(ws, device=device, dtype=dtype).contiguous(memory_format=fmt)
            args = (list(stride), list(padding), list(dilation), False, [0, 0], groups)
            g = torch.randn_like(conv(x, w, None, *args)).contiguous(memory_format=fmt)
            f = per_call(lambda: conv(x, w, None, *args))
            b = per_call(lambda: back(g, x, w, None, *args, [input_grad, True, False]))
            fwd, bwd = fwd + n * f, bwd + n * b
            shapes.append({"input": list(xs), "weight": list(ws), "stride": list(stride), "count": n,
                           "input_grad": input_grad, "forward_ms": f, "backward_ms": b})
    ms = fwd + bwd
    return {"layers": sum(seen.values()), "distinct": len(seen), "forward_ms": fwd, "backward_ms": bwd,
            "ms_per_step": ms, "images_per_sec": 1000 * a.batch / ms, "shapes": shapes}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["bare", "train", "eval", "convs"], default="bare")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=0, help="train: steps (0 = one epoch)")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--milestones", type=int, nargs="*", default=[],
                    help="train: lr /10 at these iterations (He et al.: 32000 48000 with --iterations 64000)")
    ap.add_argument("--train-limit", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="initial weights and data order")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bf16", action="store_true", help="autocast bf16 (CUDA, or a CPU with bf16 instructions)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR", "data/cifar-10-batches-bin"))
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(a.seed)
    model = CifarResNet(a.depth).to(device)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=1e-4)
    # Stepped once per iteration, so milestones count iterations as in the paper.
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, a.milestones, 0.1) if a.milestones else None
    out = {"mode": a.mode, "impl": "pytorch", "model": f"resnet-{a.depth}", "batch": a.batch,
           "precision": "bf16" if a.bf16 else "fp32", "channels_last": a.channels_last,
           "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
           "threads": a.threads, "seed": a.seed, "torch_version": torch.__version__}
    if a.bf16:
        def autocast():
            return torch.autocast(device.type, dtype=torch.bfloat16)
    else:
        autocast = contextlib.nullcontext

    def step(x, y):
        with autocast():
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    if a.mode == "convs":
        out.update(time_convs(model, a, device, fmt))
    elif a.mode == "bare":
        x = torch.randn(a.batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
        y = torch.randint(0, 10, (a.batch,), device=device)
        for _ in range(a.warmup):
            step(x, y)
        sync(device)
        t = time.perf_counter()
        for _ in range(a.steps):
            step(x, y)
        sync(device)
        s = (time.perf_counter() - t) / a.steps
        out.update(steps=a.steps, ms_per_step=1000 * s, images_per_sec=a.batch / s)
    else:
        import torchvision.transforms as T
        norm = T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
        test_x, test_y = read_cifar(os.path.join(a.data_dir, "test_batch.bin"))
        test = CifarDataset(test_x, test_y, T.Compose([T.ToTensor(), norm]))
        test_loader = torch.utils.data.DataLoader(test, batch_size=1000, num_workers=a.workers)

        def evaluate():
            model.eval()
            correct = 0
            with torch.no_grad(), autocast():
                for x, y in test_loader:
                    x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
                    correct += (model(x).argmax(1) == y.to(device)).sum().item()
            model.train()
            return 1 - correct / len(test)

        if a.mode == "eval":
            t = time.perf_counter()
            evaluate()
            s = time.perf_counter() - t
            out.update(images=len(test), seconds_per_pass=s, images_per_sec=len(test) / s)
        else:
            t = time.perf_counter()  # end to end, like resnet-bench --mode train
            parts = [read_cifar(os.path.join(a.data_dir, f"data_batch_{i}.bin")) for i in range(1, 6)]
            xs, ys = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            if a.train_limit:
                xs, ys = xs[:a.train_limit], ys[:a.train_limit]
            train = CifarDataset(xs, ys, T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                                                    T.ToTensor(), norm]))
            loader = torch.utils.data.DataLoader(train, batch_size=a.batch, shuffle=True, drop_last=True,
                                                 num_workers=a.workers, persistent_workers=a.workers > 0)
            total = a.iterations or len(loader)
            done = 0
            model.train()
            while done < total:
                for x, y in loader:
                    step(x.to(device, non_blocking=True).contiguous(memory_format=fmt), y.to(device, non_blocking=True))
                    if sched:
                        sched.step()
                    done += 1
                    if done == total:
                        break
            error = evaluate()
            sync(device)
            wall = time.perf_counter() - t
            out.update(steps=total, wall_s=wall, images_per_sec=total * a.batch / wall,
                       ms_per_step=1000 * wall / total, test_error=error, workers=a.workers,
                       lr=a.lr, milestones=a.milestones, final_lr=opt.param_groups[0]["lr"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
