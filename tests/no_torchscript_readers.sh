#!/usr/bin/env bash
# No code path hands a user's file to LibTorch's readers: TorchScript's importer (torch::jit::load,
# InputArchive, which compiles an archive's code and calls its __setstate__), its general
# unpickler (torch::pickle_load, jit::Unpickler) or its zip reader (PyTorchStreamReader, which
# trusts the sizes in the file). Fails, naming file and line, if any of them appears in src/
# outside comments. Files are read with serialize/ (zip_reader, unpickler, safetensors).
#   no_torchscript_readers.sh SRC_DIR
set -euo pipefail
src=${1:?usage: no_torchscript_readers.sh SRC_DIR}
pattern='torch::jit::load|jit::load\(|torch::load\(|InputArchive|input-archive\.h|pickle_load|jit::Unpickler|unpickler\.h>|import_ir_module|PyTorchStreamReader|torch/script\.h'
# The pattern must find what it is for (a lint that matches nothing passes everything).
for probe in 'auto m = torch::jit::load(path);' 'torch::serialize::InputArchive in;' 'torch::load(model, path);' \
             'auto v = torch::pickle_load(bytes);' 'caffe2::serialize::PyTorchStreamReader zip(path);'; do
  echo "$probe" | grep -qE "$pattern" || { echo "no_torchscript_readers.sh: pattern misses: $probe" >&2; exit 1; }
done
[ -d "$src" ] || { echo "no_torchscript_readers.sh: $src is not a folder" >&2; exit 1; }
found=0
files=0
while IFS= read -r -d '' f; do
  files=$((files + 1))
  # Comments may name them (to say why they are not used); code may not.
  if hits=$(sed 's://.*$::' "$f" | grep -nE "$pattern"); then
    while IFS= read -r line; do echo "$f:$line"; done <<<"$hits"
    found=1
  fi
done < <(find "$src" -name '*.cpp' -print0 -o -name '*.h' -print0)
[ "$files" -gt 0 ] || { echo "no_torchscript_readers.sh: no sources under $src" >&2; exit 1; }
if [ "$found" = 1 ]; then
  echo "no_torchscript_readers.sh: LibTorch readers used on files in $src (see above); read files with src/serialize/" >&2
  exit 1
fi
echo "no_torchscript_readers.sh: $files files under $src, none uses LibTorch's file readers"
