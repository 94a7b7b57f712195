#!/usr/bin/env python3
"""Writes the crafted files of tests/hostile_input_test.sh (docs/safety.md): each under 1 MiB, each
made to cost the tools memory, time or their output's sanity unless every budget holds.

    make_hostile_inputs.py OUT_DIR BASE_CHECKPOINT [BASE_WEIGHTS.safetensors]

BASE_CHECKPOINT is a real run's checkpoints/last.ckpt (version 2, safetensors) and
BASE_WEIGHTS its weights as resnet-export writes them: the crafted checkpoints keep the real
tensors and change the metadata, the crafted .pt files use the real names and shapes so that a
model would take them (without BASE_WEIGHTS, as scripts/fuzz.sh makes its seeds, that file is left
out). Python's standard library only.
"""
import io
import json
import os
import struct
import sys
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz"))
from make_bound_seeds import p_state_dict, p_storage, p_str, p_tensor, pt_file, safetensors  # noqa: E402

DEEP = 100_000  # levels: ~200 KB of brackets


def deep(n=DEEP):
    return "[" * n + "]" * n


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack_from("<Q", data)[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def raw_safetensors(header_text, data=b""):
    """A safetensors file whose header is `header_text` as it is (json.dumps would recurse)."""
    text = header_text.encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def checkpoint_with(base, doc_text):
    """The base checkpoint's tensors under a metadata document of our choosing (as text)."""
    header, data = read_safetensors(base)
    meta = header.pop("__metadata__")
    meta["resnet_train_checkpoint"] = doc_text
    entries = ",".join(json.dumps(k) + ":" + json.dumps(v) for k, v in header.items())
    return raw_safetensors('{"__metadata__":' + json.dumps(meta) + "," + entries + "}", data)


def base_doc(base):
    header, _ = read_safetensors(base)
    return json.loads(header["__metadata__"]["resnet_train_checkpoint"])


def zip_with_pickle(pkl):
    """A torch.save zip whose data.pkl is `pkl`, deflated (so that a flood is a small file)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def storage_overread(weights):
    """A state_dict with every tensor of the model, by name and shape, each in its own storage but
    one: fc.weight is a view of a deflated storage of 0.96 GB of zeros (the file stays < 1 MiB)."""
    header, _ = read_safetensors(weights)
    header.pop("__metadata__", None)
    entries, storages = [], {}
    for i, (name, e) in enumerate(sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])):
        numel = 1
        for s in e["shape"]:
            numel *= s
        kind = "LongStorage" if e["dtype"] == "I64" else "FloatStorage"
        strides, acc = [], 1
        for s in reversed(e["shape"]):
            strides.insert(0, acc)
            acc *= s
        if name == "fc.weight":
            entries.append((name, p_tensor(p_storage("big", 240_000_000), 0, e["shape"], strides)))
        else:
            entries.append((name, p_tensor(p_storage(str(i), numel, kind), 0, e["shape"], strides)))
            storages[str(i)] = b"\0" * (numel * 8 if kind == "LongStorage" else numel * 4)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", p_state_dict(entries))
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data)
        write_zeros(z, "archive/data/big", 960_000_000)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def write_zeros(z, name, size):
    with z.open(name, "w", force_zip64=True) as f:
        chunk = b"\0" * (16 << 20)
        left = size
        while left:
            f.write(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))


def view_flood():
    """The issue's file: one deflated 0.96 GB storage and four full views of it."""
    big = p_storage("0", 240_000_000) + b"q\x00"
    views = [("w0", p_tensor(big, 0, [240_000_000], [1]))]
    views += [(f"w{i}", p_tensor(b"h\x00", 0, [240_000_000], [1])) for i in range(1, 4)]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", p_state_dict(views))
        write_zeros(z, "archive/data/0", 960_000_000)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def files(base, weights):
    doc = base_doc(base)
    yield "deep_shape.safetensors", raw_safetensors(
        '{"w": {"dtype": "F32", "shape": ' + deep() + ', "data_offsets": [0, 0]}}')
    yield "long_dtype.safetensors", safetensors({"w": {"dtype": "A" * 100_000, "shape": [1], "data_offsets": [0, 4]}},
                                                b"\0" * 4)
    yield "dup_key.safetensors", raw_safetensors(
        '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
        ' "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', struct.pack("<2f", 1, 2))
    # 120 M MEMOIZE opcodes: 120 MB of pickle in a ~117 KB file.
    yield "memo_flood.pt", zip_with_pickle(b"\x80\x02N" + b"\x94" * 120_000_000 + b".")
    # The same within the pickle's size budget: 30 M MEMOIZE of one object.
    yield "memo_flood_small.pt", zip_with_pickle(b"\x80\x02N" + b"\x94" * 30_000_000 + b".")
    # 10 M references to one list appended to it (BINGET + APPEND, 3 bytes an item): 80 MB of items.
    yield "append_flood.pt", zip_with_pickle(b"\x80\x02]q\x00" + b"h\x00a" * 10_000_000 + b".")
    yield "view_flood.pt", view_flood()
    if weights:
        yield "storage_overread.pt", storage_overread(weights)
    yield "dup_key.pt", pt_file(b"\x80\x02}(" + p_str("a") + b"K\x01" + p_str("a") + b"K\x02u.", {})
    yield "deep_config.ckpt", checkpoint_with(base, json.dumps(dict(doc, config=0)).replace(
        '"config": 0', '"config": ' + deep()))
    yield "deep_changes.ckpt", checkpoint_with(base, json.dumps(dict(doc, changes=0)).replace(
        '"changes": 0', '"changes": ' + deep()))
    yield "format5.ckpt", checkpoint_with(base, json.dumps(dict(doc, format=5)))
    yield "step_string.ckpt", checkpoint_with(base, json.dumps(dict(doc, state=dict(doc["state"], step="4"))))
    yield "deep_metrics_row.jsonl", ('{"step": 3, "lr": ' + deep() + "}\n").encode()
    yield "step_string_row.jsonl", b'{"step": "4", "test_error": 0.5}\n'
    yield "deep_config.json", deep().encode()
    yield "escape_names.txt", "".join(f"cl\x1b[31mass{i}\x07\n" for i in range(10)).encode()


def main():
    out, base = sys.argv[1:3]
    weights = sys.argv[3] if len(sys.argv) > 3 else None
    os.makedirs(out, exist_ok=True)
    for name, data in files(base, weights):
        assert len(data) < 1 << 20, f"{name}: {len(data)} bytes, not under 1 MiB"
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
