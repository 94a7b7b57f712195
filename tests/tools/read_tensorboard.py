"""A run folder's event files as TensorBoard itself loads them (tensorboard's EventAccumulator, the
reader behind its web UI): prints one JSON object {tag: [[step, value], ...]} of every scalar.

  read_tensorboard.py RUN_DIR
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})  # 0: keep every point
acc.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))
