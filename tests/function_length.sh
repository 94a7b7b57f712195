#!/usr/bin/env bash
# Functions stay short enough to read: none in src/train, src/parallel or src/bench (the loop and
# the layers under it) over 60 lines, none anywhere in src/ over 100. Lengths come from
# universal-ctags (its "end" field: the line of the closing brace). Fails naming file, function
# and length; fails (does not skip) without universal-ctags, when a function has no end line (a
# file ctags could not follow), or when its own probe (a 73-line function) is not measured as such.
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
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
mkdir -p "$probe/train"
{ echo "namespace p {"; echo "int probe(int x) {"; for i in $(seq 70); do echo "  x += $i;"; done; echo "  return x;"; echo "}"
  echo "}  // namespace p"; } >"$probe/train/probe.cpp"
measure() {  # measure DIR: one line per too-long function, then the count; exit 1 if any
  ctags -f - --languages=C++ --c++-kinds=f --fields=+ne --output-format=json -R "$1" | "$py" -c '
import json, os, sys
src = sys.argv[1]
strict = ("train", "parallel", "bench")   # the loop and the layers under it
functions, long = 0, []
for line in sys.stdin:
    tag = json.loads(line)
    if tag.get("_type") != "tag":
        continue
    if "end" not in tag:
        sys.exit("function_length.sh: %s:%d: %s has no end line: ctags could not follow the file" % (tag["path"], tag["line"], tag["name"]))
    functions += 1
    n = tag["end"] - tag["line"] + 1
    folder = os.path.relpath(tag["path"], src).split(os.sep)[0]
    limit = 60 if folder in strict else 100
    if n > limit:
        long.append("%s:%d: %s is %d lines (at most %d in %s/)" % (tag["path"], tag["line"], tag["name"], n, limit, folder))
for l in long:
    print(l)
print("function_length.sh: %d functions, %d too long" % (functions, len(long)))
sys.exit(1 if long else 0)
' "$1"
}
# The probe must be caught, with its true length.
if measure "$probe" >"$probe/out" 2>&1 || ! grep -q ": probe is 73 lines (at most 60 in train/)" "$probe/out"; then
  echo "function_length.sh: the probe was not measured right:" >&2
  cat "$probe/out" >&2
  exit 1
fi
out=$(measure "$src") || { echo "$out"; exit 1; }
echo "$out"
n=$(sed -n 's/^function_length.sh: \([0-9]*\) functions.*/\1/p' <<<"$out")
[ "${n:-0}" -ge 100 ] || { echo "function_length.sh: only ${n:-0} functions under $src: ctags did not read the sources" >&2; exit 1; }
