"""PyTorch's power iteration for the Hessian's top eigenvalue (as PyHessian does it), on the same
weights, images and BN mode (eval) as resnet-analyze hessian. Prints "top_eigenvalue X".

  check_hessian.py --checkpoint RUN/checkpoints/last.ckpt --data DIR --images N [--split train]

Stopping rule: relative change of the Rayleigh quotient below 1e-4, at most 300 iterations, from a
seeded Gaussian start (not resnet-analyze's: the two runs share no random numbers). Why the two
agree to well under 2 %: the Rayleigh quotient vᵀHv of a symmetric H converges to the dominant
eigenvalue with error ~ (λ2/λ1)^(2t), and it can only stall early when λ2 is within a hair of λ1,
in which case any value it stalls at is that close to λ1 too.
"""
import argparse

import torch

from common_analysis import model_from_checkpoint, named_images

p = argparse.ArgumentParser()
p.add_argument("--checkpoint", required=True)
p.add_argument("--data", required=True)
p.add_argument("--images", type=int, required=True)
p.add_argument("--split", default="train")
a = p.parse_args()

torch.set_num_threads(1)
torch.manual_seed(1234)
model, ckpt = model_from_checkpoint(a.checkpoint)
x, y = named_images(a.data, a.split, a.images, ckpt)
params = [q for q in model.parameters()]
loss = torch.nn.functional.cross_entropy(model(x), y)
grads = torch.autograd.grad(loss, params, create_graph=True)
v = [torch.randn_like(q) for q in params]
norm = torch.sqrt(sum((t * t).sum() for t in v))
v = [t / norm for t in v]
eigenvalue = None
for it in range(300):
    hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
    rayleigh = sum((h * t).sum() for h, t in zip(hv, v)).item()
    norm = torch.sqrt(sum((h * h).sum() for h in hv))
    v = [h / norm for h in hv]
    if eigenvalue is not None and abs(rayleigh - eigenvalue) < 1e-4 * abs(eigenvalue):
        eigenvalue = rayleigh
        break
    eigenvalue = rayleigh
print(f"top_eigenvalue {eigenvalue:.8g} after {it + 1} iterations")
