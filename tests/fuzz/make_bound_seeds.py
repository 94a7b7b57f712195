#!/usr/bin/env python3
"""Writes the fuzz seeds that each cross one bound of the readers (issue: every tensor from any file
is bounds-checked). Each file is small, hand-assembled and named for the bound it crosses; the
unit tests (tests/test_readers.cpp) read each one and expect its refusal, so the seeds are also
the readers' regression inputs.

    make_bound_seeds.py CORPUS_DIR [NAME...]   (tests/fuzz/corpus: writes into weights/ and
                                               checkpoint/; with NAMEs only those)

Python's standard library only: the pickles are written opcode by opcode, not by pickle.dumps, so
that they can say what no pickler would.
"""
import io
import json
import os
import struct
import sys
import zipfile

# ---- pickle opcodes ---------------------------------------------------------------------------


def p_str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def p_int(i):
    if 0 <= i < 256:
        return b"K" + bytes([i])
    if 0 <= i < 65536:
        return b"M" + struct.pack("<H", i)
    return b"\x8a\x08" + struct.pack("<q", i)  # LONG1, 8 bytes


def p_global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def p_tuple(items):
    return b"(" + b"".join(items) + b"t"


def p_storage(key, numel, kind="FloatStorage"):
    """A persistent id ("storage", torch.<kind>, key, "cpu", numel), loaded."""
    return p_tuple([p_str("storage"), p_global("torch", kind), p_str(key), p_str("cpu"), p_int(numel)]) + b"Q"


def p_tensor(storage, offset, sizes, strides):
    """_rebuild_tensor_v2(storage, offset, sizes, strides, False, OrderedDict())"""
    args = [storage, p_int(offset), p_tuple([p_int(s) for s in sizes]), p_tuple([p_int(s) for s in strides]),
            b"\x89", p_global("collections", "OrderedDict") + b")R"]
    return p_global("torch._utils", "_rebuild_tensor_v2") + p_tuple(args) + b"R"


def p_state_dict(entries):
    """{name: tensor, ...} as protocol 2."""
    body = b"".join(p_str(k) + v for k, v in entries)
    return b"\x80\x02}(" + body + b"u."


# ---- files ------------------------------------------------------------------------------------


def pt_file(pickle_bytes, storages, folder="archive", compress=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compress) as z:
        z.writestr(f"{folder}/data.pkl", pickle_bytes)
        for key, data in storages.items():
            z.writestr(f"{folder}/data/{key}", data)
        z.writestr(f"{folder}/version", "3\n")
    return out.getvalue()


def lie_about_size(zip_bytes, record, size):
    """Sets the uncompressed size of `record` to `size` in its local header and the central
    directory (both, so that the archive stays consistent): the file now claims `size` bytes."""
    b = bytearray(zip_bytes)
    name = record.encode()
    local = b.find(b"PK\x03\x04" + b"", 0)
    while local >= 0:
        n = struct.unpack_from("<H", b, local + 26)[0]
        if bytes(b[local + 30:local + 30 + n]) == name:
            struct.pack_into("<I", b, local + 22, size)
        local = b.find(b"PK\x03\x04", local + 4)
    central = b.find(b"PK\x01\x02")
    while central >= 0:
        n = struct.unpack_from("<H", b, central + 28)[0]
        if bytes(b[central + 46:central + 46 + n]) == name:
            struct.pack_into("<I", b, central + 24, size)
        central = b.find(b"PK\x01\x02", central + 4)
    return bytes(b)


def raw_safetensors(header_text, data=b""):
    """A safetensors file whose header is `header_text` as it is (json.dumps cannot say everything)."""
    text = header_text.encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors(header, data=b""):
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


FLOATS4 = struct.pack("<4f", 1, 2, 3, 4)


def weight_seeds():
    s = p_storage("0", 4)
    yield "bound_view_past_end.pt", pt_file(p_state_dict([("w", p_tensor(s, 2, [3], [1]))]), {"0": FLOATS4})
    yield "bound_negative_offset.pt", pt_file(
        p_state_dict([("w", p_tensor(s, -1, [2], [1]))]), {"0": FLOATS4})
    # (3 - 1) * 2^62 = 2^63: the view's last element overflows int64.
    yield "bound_stride_overflows.pt", pt_file(
        p_state_dict([("w", p_tensor(s, 0, [3], [1 << 62]))]), {"0": FLOATS4})
    # 2^31 x 2^31 x 2^31 elements (stride 0 keeps the view inside one element).
    yield "bound_size_overflows.pt", pt_file(
        p_state_dict([("w", p_tensor(s, 0, [1 << 31] * 3, [0] * 3))]), {"0": FLOATS4})
    # One 16 KB storage viewed whole 300 times: 4.9 MB of tensors from a 16 KB record.
    first = p_storage("0", 4096) + b"q\x00"
    views = [("w0", p_tensor(first, 0, [4096], [1]))]
    views += [(f"w{i}", p_tensor(b"h\x00", 0, [4096], [1])) for i in range(1, 300)]
    yield "bound_many_views.pt", pt_file(p_state_dict(views), {"0": b"\0" * 16384})
    # A storage of 2^62 floats: 2^64 bytes.
    yield "bound_storage_bytes_overflow.pt", pt_file(
        p_state_dict([("w", p_tensor(p_storage("0", 1 << 62), 0, [1], [1]))]), {"0": FLOATS4})
    # A deflated record that claims 2^31 bytes from a few dozen: more than deflate's 1032:1 can
    # produce. Refused before anything is inflated or allocated.
    huge = p_storage("0", 1 << 29)  # 2^29 floats: the 2^31 bytes the record claims
    # The view covers the whole storage: what is read of it is all of it (a smaller view is refused
    # sooner, as a storage many times bigger than its tensors).
    bomb = pt_file(p_state_dict([("w", p_tensor(huge, 0, [1 << 29], [1]))]), {"0": FLOATS4},
                   compress=zipfile.ZIP_DEFLATED)
    yield "bound_deflate_ratio.pt", lie_about_size(bomb, "archive/data/0", 1 << 31)
    good = pt_file(p_state_dict([("w", p_tensor(s, 0, [4], [1]))]), {"0": FLOATS4}, compress=zipfile.ZIP_DEFLATED)
    yield "deflated_ok.pt", good  # deflated but honest: read
    # A 4 MB storage (deflated zeros) of which 4 floats are viewed: not read for 16 bytes.
    zeros = p_storage("0", 1 << 20)
    yield "bound_storage_overread.pt", pt_file(p_state_dict([("w", p_tensor(zeros, 0, [4], [1]))]),
                                               {"0": b"\0" * (4 << 20)}, compress=zipfile.ZIP_DEFLATED)
    # The unpickler's budgets: a memo entry per object at most; 64 MiB of objects, items and stack.
    yield "bound_memo_flood.pt", pt_file(b"\x80\x02N" + b"\x94" * 100_000 + b".", {}, compress=zipfile.ZIP_DEFLATED)
    yield "bound_append_flood.pt", pt_file(b"\x80\x02]q\x00" + b"h\x00a" * 9_000_000 + b".", {},
                                           compress=zipfile.ZIP_DEFLATED)
    yield "bound_mark_flood.pt", pt_file(b"\x80\x02" + b"(" * 9_000_000 + b"N.", {}, compress=zipfile.ZIP_DEFLATED)
    # A key twice in one dict (torch.load keeps the last value): refused.
    yield "bound_dup_key.pt", pt_file(p_state_dict([("w", p_tensor(s, 0, [4], [1])), ("w", p_tensor(s, 0, [2], [1]))]),
                                      {"0": FLOATS4})
    # JSON: nested deeper than 64 levels (a shape), a key twice.
    yield "bound_deep_shape.safetensors", raw_safetensors(
        '{"w": {"dtype": "F32", "shape": ' + "[" * 1000 + "]" * 1000 + ', "data_offsets": [0, 0]}}')
    yield "bound_dup_key.safetensors", raw_safetensors(
        '{"__metadata__": {"x": "1", "x": "2"}, "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', FLOATS4)
    # safetensors: F32 [2^62] is 2^64 bytes, which wraps to 0 and matched data_offsets [0, 0].
    yield "bound_numel_wraps.safetensors", safetensors(
        {"w": {"dtype": "F32", "shape": [1 << 62], "data_offsets": [0, 0]}})
    yield "bound_overlap.safetensors", safetensors(
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
         "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, FLOATS4)


def checkpoint_seeds():
    # A version-2 checkpoint whose header makes the same wrap as above.
    doc = {"format": "resnet-train-checkpoint", "version": 2}
    yield "bound_numel_wraps.ckpt", safetensors(
        {"__metadata__": {"resnet_train_checkpoint": json.dumps(doc)},
         "model.w": {"dtype": "F32", "shape": [1 << 62], "data_offsets": [0, 0]}})
    # Metadata nested 1000 deep (the reader's limit is 64; a 100,000-deep one was a stack overflow).
    deep = json.dumps(dict(doc, config=0)).replace('"config": 0', '"config": ' + "[" * 1000 + "]" * 1000)
    yield "bound_deep_metadata.ckpt", safetensors({"__metadata__": {"resnet_train_checkpoint": deep}})


def main():
    corpus = sys.argv[1]
    only = set(sys.argv[2:])  # names: write only these (the others stay byte for byte)
    for folder, seeds in (("weights", weight_seeds()), ("checkpoint", checkpoint_seeds())):
        os.makedirs(os.path.join(corpus, folder), exist_ok=True)
        for name, data in seeds:
            if only and name not in only:
                continue
            with open(os.path.join(corpus, folder, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
