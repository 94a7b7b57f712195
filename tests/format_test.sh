#!/usr/bin/env bash
# The sources are in the project's style (scripts/format.sh --check). First the check is seen
# failing: a copy of the script and .clang-format in a scratch repository with one misformatted
# file must be refused naming it, and pass once formatted. Exit 77 (skipped) without clang-format 14.
#   format_test.sh PROJECT_DIR
set -euo pipefail
root=${1:?usage: format_test.sh PROJECT_DIR}
command -v git >/dev/null || { echo "format_test: needs git for its scratch repository" >&2; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/scripts" "$tmp/src"
cp "$root/scripts/format.sh" "$tmp/scripts/"
cp "$root/.clang-format" "$tmp/"
printf 'int  f( int x ){return x+1;}\n' >"$tmp/src/bad.cpp"
git -C "$tmp" init -q && git -C "$tmp" add -A
set +e
out=$("$tmp/scripts/format.sh" --check 2>&1)
rc=$?
set -e
[ "$rc" = 77 ] && { echo "$out"; exit 77; }
if [ "$rc" != 1 ] || ! grep -q "src/bad.cpp is not in the project style" <<<"$out"; then
  echo "format_test: the check passed a misformatted file (rc $rc): $out" >&2; exit 1
fi
"$tmp/scripts/format.sh"
"$tmp/scripts/format.sh" --check >/dev/null || { echo "format_test: formatting did not satisfy the check" >&2; exit 1; }
grep -q "^int f(int x) { return x + 1; }$" "$tmp/src/bad.cpp" ||
  { echo "format_test: unexpected formatting: $(cat "$tmp/src/bad.cpp")" >&2; exit 1; }
exec "$root/scripts/format.sh" --check
