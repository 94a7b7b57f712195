"""OpenCV's DNN module (Debian's python3-opencv, run by /usr/bin/python3: the venv has no OpenCV)
runs an exported model on raw input bytes:
  run_opencv.py MODEL.onnx INPUT.bin float32|uint8 N,C,H,W OUTPUT.bin
Writes the first output's float32 values and prints its dims and OpenCV's version as JSON."""
import json
import sys

import cv2
import numpy as np

model, inp, dtype, dims, out = sys.argv[1:]
x = np.fromfile(inp, dtype=np.uint8 if dtype == "uint8" else np.float32).reshape([int(d) for d in dims.split(",")])
net = cv2.dnn.readNetFromONNX(model)
net.setInput(x)
y = net.forward().astype(np.float32)
y.tofile(out)
print(json.dumps({"dims": list(y.shape), "version": cv2.__version__}))
