"""resnet-analyze landscape against PyTorch: every grid point of landscape.json equals the loss of
python/cifar_resnet.py loaded with θ + αδ + βη, θ from the checkpoint and δ, η from the
directions file written beside the result (read here with an independent safetensors reader).
Prints "max_rel_diff X"; exit 1 if X > --tol.

  check_landscape.py --checkpoint RUN/checkpoints/last.ckpt --data DIR --result OUT_DIR [--tol 1e-4]
"""
import argparse
import json
import os
import sys

import torch

from common_analysis import model_from_checkpoint, named_images
from common import load_safetensors

p = argparse.ArgumentParser()
p.add_argument("--checkpoint", required=True)
p.add_argument("--data", required=True)
p.add_argument("--result", required=True)
p.add_argument("--tol", type=float, default=1e-4)
a = p.parse_args()

torch.set_num_threads(1)
result = json.load(open(os.path.join(a.result, "landscape.json")))
model, ckpt = model_from_checkpoint(a.checkpoint)
x, y = named_images(a.data, result["images"]["split"], result["images"]["first"], ckpt)
theta = {k: v.clone() for k, v in model.state_dict().items()}
worst = 0.0
points = 0
for s in result["subjects"]:
    d = load_safetensors(os.path.join(a.result, s["directions"]))
    axis = s["axis"]
    two_d = result["kind"] == "surface"
    rows = s["loss"] if two_d else [s["loss"]]
    for j, row in enumerate(rows):
        for i, theirs in enumerate(row):
            alpha, beta = axis[i], axis[j] if two_d else 0.0
            state = dict(theta)
            for name, _ in model.named_parameters():
                w = theta[name] + alpha * d["delta." + name]
                if two_d:
                    w = w + beta * d["eta." + name]
                state[name] = w
            model.load_state_dict(state, strict=True)
            with torch.no_grad():
                ours = torch.nn.functional.cross_entropy(model(x), y).item()
            worst = max(worst, abs(ours - theirs) / max(abs(ours), 1e-12))
            points += 1
print(f"max_rel_diff {worst:.3g} over {points} points")
sys.exit(0 if worst <= a.tol and points > 0 else 1)
