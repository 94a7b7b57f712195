#!/usr/bin/env python3
"""An independent reader of TensorBoard event files, for the tests.

    read_tfevents.py EVENTS_FILE GENERATED_DIR

GENERATED_DIR holds event_pb2.py, made by `protoc --python_out` from src/tensorboard/event.proto.
Checks every record's framing and both masked CRC-32Cs (python3-crc32c), parses each Event with
python3-protobuf, and prints one JSON object per event: {"step", "wall_time", "file_version"} or
{"step", "wall_time", "values": {tag: simple_value}}. Exit 1 with a message on any defect.
"""
import json
import struct
import sys

import crc32c


def masked(data):
    c = crc32c.crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def main():
    path, generated = sys.argv[1], sys.argv[2]
    sys.path.insert(0, generated)
    import event_pb2  # noqa: E402

    data = open(path, "rb").read()
    at = 0
    while at < len(data):
        if len(data) - at < 16:
            sys.exit(f"{path}: {len(data) - at} trailing bytes at offset {at}")
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        if header_crc != masked(header):
            sys.exit(f"{path}: bad length CRC at offset {at}")
        body = data[at + 12:at + 12 + length]
        (body_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        if len(body) != length or body_crc != masked(body):
            sys.exit(f"{path}: bad data CRC at offset {at}")
        event = event_pb2.Event()
        event.ParseFromString(body)
        out = {"step": event.step, "wall_time": event.wall_time}
        if event.WhichOneof("what") == "file_version":
            out["file_version"] = event.file_version
        else:
            out["values"] = {v.tag: v.simple_value for v in event.summary.value}
        print(json.dumps(out))
        at += 16 + length


if __name__ == "__main__":
    main()
