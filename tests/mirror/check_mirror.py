"""python/cifar_resnet.py against the C++ nets (tests/test_python_mirror.cpp writes what they hold).

    check_mirror.py --nets NETS.json [--weights DIR]

NETS.json: [{"name", "model": a resolved model config, "state": [[name, shape], ...]}], the
state_dict of the C++ net in its order. Each entry's ResNet(**model) must have the same keys in the
same order with the same shapes. With --weights, DIR/<name>.safetensors (a native export) must load
strictly and give DIR/<name>_io.safetensors's logits for its images (to 1e-4).
Prints one line per net; exit 1 if any differs.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import torch  # noqa: E402
import cifar_resnet  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--nets", required=True)
p.add_argument("--weights")
a = p.parse_args()

failed = 0
for net in json.load(open(a.nets)):
    model = cifar_resnet.ResNet(**net["model"])
    mine = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    theirs = net["state"]
    diff = [f"{i}: python {m} c++ {t}" for i, (m, t) in enumerate(zip(mine, theirs)) if m != t]
    if len(mine) != len(theirs):
        diff.append(f"python has {len(mine)} entries, c++ {len(theirs)}")
    line = f"{net['name']}: {len(mine)} entries"
    if a.weights and not diff:
        from safetensors.torch import load_file
        model.load_state_dict(load_file(os.path.join(a.weights, net["name"] + ".safetensors")), strict=True)
        io = load_file(os.path.join(a.weights, net["name"] + "_io.safetensors"))
        model.eval()
        with torch.no_grad():
            logits = model(io["images"])
        d = (logits - io["logits"]).abs().max().item()
        line += f", max_abs_diff {d:.3g}"
        if not d <= 1e-4:
            diff.append(f"logits differ by {d}")
    print(line + ("" if not diff else " MISMATCH " + "; ".join(diff[:5])))
    failed += bool(diff)
sys.exit(1 if failed else 0)
