#!/usr/bin/env bash
# Runs the first ```sh block under a heading of a Markdown file, as written, from the repository
# root (bash -euo pipefail, each command echoed): the documentation's commands are tested by running
# them, not by copying them into a test.
#   scripts/doc_block.sh FILE "HEADING"      e.g. scripts/doc_block.sh README.md "On a GPU"
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# = 2 ] || { echo "usage: doc_block.sh FILE \"HEADING\"" >&2; exit 2; }
file=$1 heading=$2
[ -f "$file" ] || { echo "doc_block.sh: no file $file" >&2; exit 2; }
block=$(awk -v h="$heading" '
  /^#+ / { sub(/^#+ /, ""); under = ($0 == h); next }
  under && /^```sh$/ { inside = 1; next }
  inside && /^```$/ { exit }
  inside { print }' "$file")
[ -n "$block" ] || { echo "doc_block.sh: $file has no \`\`\`sh block under a heading \"$heading\"" >&2; exit 2; }
echo "doc_block: $file, \"$heading\":"
bash -euxo pipefail -c "$block"
echo "doc_block: $file, \"$heading\": every command succeeded"
