#!/usr/bin/env python3
"""Writes fuzz seeds in torch.save's legacy format (PyTorch < 1.6, or
_use_new_zipfile_serialization=False: a stream of pickles, then the storages' bytes), made by
Debian's python3-torch itself, and damaged copies that the reader must refuse. The unit tests
(tests/test_readers.cpp) read each one and expect its value or its refusal.

    make_legacy_seeds.py CORPUS_DIR      (tests/fuzz/corpus: writes into weights/)
"""
import collections
import io
import os
import struct
import sys

import torch


def legacy(obj):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def state_dict():
    # A 2x3 weight, a view into the middle of a storage (offset 1), an int64 scalar.
    return collections.OrderedDict([("w", torch.arange(6, dtype=torch.float32).view(2, 3)),
                                    ("b", torch.arange(3, dtype=torch.float32)[1:]),
                                    ("n", torch.tensor(5))])


def storage_keys(data):
    """The keys of the storages, in file order (the last pickle before the data)."""
    f = io.BytesIO(data)
    import pickle
    for _ in range(3):
        pickle.load(f)

    class Skip(pickle.Unpickler):
        def persistent_load(self, pid):
            return None

        def find_class(self, module, name):  # nothing is imported: dicts stay dicts, the rest None
            return dict if name == "OrderedDict" else (lambda *a, **k: None)
    Skip(f).load()
    keys = pickle.load(f)
    return keys, f.tell()


def main():
    out = os.path.join(sys.argv[1], "weights")
    os.makedirs(out, exist_ok=True)
    good = legacy(state_dict())
    seeds = {"legacy_ok.pt": good,
             "legacy_wrapped_ok.pt": legacy({"epoch": 3, "state_dict": state_dict()})}
    keys, data_start = storage_keys(good)
    seeds["legacy_truncated.pt"] = good[:-7]
    # A key in the keys list that no storage of the object has (same length, so the pickle holds).
    at = good.rindex(keys[0].encode())
    seeds["legacy_keys_mismatch.pt"] = good[:at] + b"9" * len(keys[0]) + good[at + len(keys[0]):]
    # A first storage whose element count differs from the object's.
    count = struct.unpack_from("<q", good, data_start)[0]
    seeds["legacy_count_mismatch.pt"] = good[:data_start] + struct.pack("<q", count + 1) + good[data_start + 8:]
    # Storages saved on a GPU: their location says "cuda:0" (they load onto the CPU).
    seeds["legacy_cuda_ok.pt"] = good.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
    # A global that is not a tensor rebuild.
    seeds["legacy_global.pt"] = good.replace(b"torch._utils\n_rebuild_tensor_v2\n", b"builtins\neval\n", 1)
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
