#!/usr/bin/env bash
# The C++ sources in the project's style (.clang-format: Google's, 120 columns), with Debian 12's
# clang-format 14 (scripts/install_deps.sh --test installs it; other majors format some lines
# differently, so they are not used).
#   scripts/format.sh            rewrites every tracked .cpp/.h/.cu/.cuh in place
#   scripts/format.sh --check    lists the files that differ; exit 1 if any, 77 without clang-format 14
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[ "${1:-}" = --check ] && check=1
cf=
for c in clang-format-14 clang-format; do
  if command -v "$c" >/dev/null && "$c" --version | grep -q "version 14\."; then cf=$c; break; fi
done
if [ -z "$cf" ]; then
  echo "format.sh: needs clang-format 14 (scripts/install_deps.sh --test installs it)" >&2
  [ "$check" = 1 ] && exit 77 || exit 2
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files -- '*.cpp' '*.h' '*.cu' '*.cuh')
else  # an unpacked source archive (or a checkout git will not read)
  echo "format.sh: not a git work tree here: checking the C++ files under src/, tests/, bench/" >&2
  dirs=()
  for d in src tests bench; do [ -d "$d" ] && dirs+=("$d"); done
  mapfile -t files < <(find "${dirs[@]}" -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort)
fi
[ "${#files[@]}" -gt 0 ] || { echo "format.sh: no C++ sources tracked here" >&2; exit 2; }
if [ "$check" = 0 ]; then
  "$cf" -i --style=file "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$cf" --style=file --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ "${#bad[@]}" -gt 0 ]; then
  printf 'format.sh: %s is not in the project style\n' "${bad[@]}" >&2
  echo "format.sh: ${#bad[@]} of ${#files[@]} files differ: run scripts/format.sh" >&2
  exit 1
fi
echo "format.sh: ${#files[@]} files in the project style"
