#!/usr/bin/env bash
# Compile-only check of every source file against LibTorch 2.x with the CUDA paths switched on,
# for machines that have neither a GPU nor LibTorch 2.x (the development machine has Debian 12's
# LibTorch 1.13, CPU only). It catches the API breaks between the two versions and errors in the
# code behind RESNET_WITH_CUDA before a scarce GPU session finds them. It links nothing and runs
# nothing: the GPU run itself is still the real check.
#
#   scripts/check_torch2.sh [--cache DIR] [--jobs N] [FILE...]
#
# Headers come from Debian 13 (trixie): libtorch-cuda-dev 2.6 (contrib), nvidia-cuda-dev 12.4
# (non-free, ~0.9 GB) and libcu++-dev; they are unpacked with dpkg -x into the cache folder
# (default .deps/torch2, git-ignored), never installed.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.deps/torch2
jobs=$(nproc)
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) cache=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "check_torch2.sh: unknown option $1" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debs=(
  pool/contrib/p/pytorch-cuda/libtorch-cuda-dev_2.6.0+dfsg-7+b1_amd64.deb
  pool/non-free/n/nvidia-cuda-toolkit/nvidia-cuda-dev_12.4.127~12.4.1-2_amd64.deb
  pool/main/c/cccl/libcu++-dev_2.3.2-2_all.deb
)
root=$cache/root
if [ ! -f "$root/.complete" ]; then
  mkdir -p "$cache/debs"
  rm -rf "$root.partial"
  for d in "${debs[@]}"; do
    f=$cache/debs/$(basename "$d")
    if [ ! -s "$f" ]; then
      echo "fetching $(basename "$d")"
      curl -fsSL -o "$f.tmp" "$mirror/$d" || {
        echo "check_torch2.sh: cannot fetch $mirror/$d (newer trixie versions may have replaced it;" \
             "look it up in $mirror/dists/trixie)" >&2
        rm -f "$f.tmp"; exit 1; }
      mv "$f.tmp" "$f"
    fi
    dpkg -x "$f" "$root.partial"
  done
  touch "$root.partial/.complete"
  rm -rf "$root" && mv "$root.partial" "$root"
fi
inc=$root/usr/include
[ -f "$inc/ATen/cuda/CUDAGraph.h" ] || { echo "check_torch2.sh: $inc lacks ATen/cuda headers" >&2; exit 1; }

if [ ${#files[@]} -eq 0 ]; then
  mapfile -t files < <(ls src/*/*.cpp tests/*.cpp)
fi
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
check() {
  local f=$1 log=$2/$(echo "$1" | tr / _).log
  # The headers under -isystem come before /usr/include, so LibTorch 1.13's are never seen.
  # (The tests' paths to the binaries only need to be string literals here.)
  if g++ -std=gnu++17 -fsyntax-only -DRESNET_WITH_CUDA=1 -D_GLIBCXX_USE_CXX11_ABI=1 \
       -DRESNET_TRAIN_BIN='""' -DRESNET_EVAL_BIN='""' -DRESNET_ANALYZE_BIN='""' \
       -DRESNET_BIN_DIR='""' -DRESNET_SOURCE_DIR='""' \
       -Wall -Wextra -Wno-unused-parameter -Isrc -isystem "$3" -isystem "$3/torch/csrc/api/include" \
       "$f" >"$log" 2>&1; then
    echo "ok    $f"
  else
    echo "FAIL  $f"; grep -m5 'error' "$log" | sed 's/^/      /'
  fi
}
export -f check
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} bash -c 'check "$@"' _ {} "$logs" "$inc" | tee "$logs/summary"
failed=$(grep -c '^FAIL' "$logs/summary" || true)
echo "LibTorch 2.6 + CUDA 12.4 headers: ${#files[@]} files, $failed failed"
[ "$failed" = 0 ]
