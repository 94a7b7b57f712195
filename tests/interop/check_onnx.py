"""C++ -> ONNX -> other runtimes: an ONNX model resnet-export wrote, checked by the ONNX library's
Python checker (full check, with shape inference) and run by ONNX Runtime (its own Python package,
from PyPI, as users install it) and by OpenCV's DNN module (Debian's, run by --opencv-python in its
own process), on the first N test images, against the logits resnet-eval wrote. The input comes from the model's own metadata: normalised floats, or uint8
images for --with-normalizer exports. A runtime that is missing is a failure, not a skip.

  check_onnx.py --case M.onnx L.pt [--case ...] --data DIR --opencv-python PY [--limit 64] [--tol 1e-4]
Prints per case "== M.onnx", "onnx checker ok ...", then "<runtime> max_abs_diff X" per runtime;
exit 1 on any failure (all cases are still checked).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

from common import read_cifar

import cifar_resnet

p = argparse.ArgumentParser()
p.add_argument("--case", nargs=2, action="append", metavar=("MODEL", "LOGITS"), required=True)
p.add_argument("--data", required=True)
p.add_argument("--opencv-python", required=True)
p.add_argument("--limit", type=int, default=64)
p.add_argument("--tol", type=float, default=1e-4)
a = p.parse_args()
torch.set_num_threads(1)
failed = []

import onnx  # a missing module fails here, loudly
import onnxruntime

images, labels = read_cifar(os.path.join(a.data, "test_batch.bin"), a.limit)


def compare(runtime, logits, expected):
    diff = float(np.abs(logits - expected[: len(logits)]).max())
    print(f"{runtime} max_abs_diff {diff:.3g} over {logits.shape} logits (|logit| up to {np.abs(expected).max():.3g})")
    if not diff <= a.tol:
        failed.append(runtime)


def run_onnxruntime(path, batch):
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def run_opencv(path, batch, uint8):
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.bin"), os.path.join(tmp, "out.bin")
        batch.tofile(inp)
        run = subprocess.run([a.opencv_python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_opencv.py"),
                              path, inp, "uint8" if uint8 else "float32", ",".join(map(str, batch.shape)), out],
                             capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"OpenCV failed (python3-opencv: scripts/install_deps.sh --test): {run.stderr.strip()}")
        info = json.loads(run.stdout)
        return info["version"], np.fromfile(out, dtype=np.float32).reshape(info["dims"])


def check(path, logits_path):
    print("==", path)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    print("onnx checker ok: opset", model.opset_import[0].version, "ir", model.ir_version)
    meta = json.loads({p.key: p.value for p in model.metadata_props}["resnet_train"])
    graph_input = model.graph.input[0].type.tensor_type
    assert graph_input.shape.dim[0].dim_param, "the batch axis is not dynamic"
    uint8 = graph_input.elem_type == onnx.TensorProto.UINT8
    assert meta["onnx"]["input"].startswith("uint8") == uint8, meta["onnx"]
    x = images if uint8 else cifar_resnet.normalize(images, meta)
    x = x.numpy().astype(np.uint8 if uint8 else np.float32)
    expected = torch.load(logits_path, weights_only=True)
    assert torch.equal(expected["labels"], labels), "resnet-eval saw other images"
    expected = expected["logits"].numpy()
    # The whole batch, then 3 images: the batch axis is dynamic.
    compare("onnxruntime", run_onnxruntime(path, x), expected)
    compare("onnxruntime batch 3", run_onnxruntime(path, x[:3]), expected)
    version, logits = run_opencv(path, x, uint8)
    compare("opencv " + version, logits, expected)


print(f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, torch {torch.__version__}")
for model_path, logits_path in a.case:
    check(model_path, logits_path)
print("failed:", ", ".join(failed) if failed else "none")
sys.exit(1 if failed else 0)
