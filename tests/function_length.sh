#!/usr/bin/env bash
# Functions stay short enough to read: none in src/train, src/parallel or src/bench (the loop and
# the layers under it) over 60 lines, none anywhere in src/ over 100, except the unpickler's opcode
# switch (one case per opcode). Lengths come from universal-ctags (its "end" field: the line of
# the closing brace); fails naming file, function and length, and fails (does not skip) without
# universal-ctags or when it finds no functions.
#   function_length.sh SRC_DIR
set -euo pipefail
src=${1:?usage: function_length.sh SRC_DIR}
[ -d "$src" ] || { echo "function_length.sh: $src is not a folder" >&2; exit 1; }
if ! ctags --version 2>/dev/null | grep -q "Universal Ctags"; then
  echo "function_length.sh: needs universal-ctags (scripts/install_deps.sh --test installs it)" >&2
  exit 1
fi
py=/usr/bin/python3
[ -x "$py" ] || py=python3
ctags -f - --c++-kinds=f --fields=+ne --output-format=json -R "$src" | "$py" -c '
import json, os, sys
src = sys.argv[1]
strict = ("train", "parallel", "bench")   # the loop and the layers under it
allowed = {("serialize", "step")}         # Unpickler::step: the opcode switch
functions, long = 0, []
for line in sys.stdin:
    tag = json.loads(line)
    if tag.get("_type") != "tag" or "end" not in tag:
        continue
    functions += 1
    n = tag["end"] - tag["line"] + 1
    folder = os.path.relpath(tag["path"], src).split(os.sep)[0]
    limit = 60 if folder in strict else 100
    if n > limit and (folder, tag["name"]) not in allowed:
        long.append("%s:%d: %s is %d lines (at most %d in %s/)" % (tag["path"], tag["line"], tag["name"], n, limit, folder))
if functions < 50:
    sys.exit(f"function_length.sh: only {functions} functions found under {src}: ctags did not read the sources")
for l in long:
    print(l)
print(f"function_length.sh: {functions} functions, {len(long)} too long")
sys.exit(1 if long else 0)
' "$src"
