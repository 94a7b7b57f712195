#!/usr/bin/env bash
# Compile-only check of every source and test file against LibTorch 2.x with the CUDA paths
# switched on, for machines that have neither a GPU nor LibTorch 2.x (the development machine has
# Debian 12's LibTorch 1.13, CPU only). It catches the API breaks between the two versions and
# errors in the code behind RESNET_WITH_CUDA before a scarce GPU session finds them. It links
# nothing and runs nothing: the GPU run itself is still the real check. CI runs it (.ci/run).
#
#   scripts/check_torch2.sh [--cache DIR] [--jobs N] [FILE...]
#
# Headers come from Debian 13 (trixie): libtorch-cuda-dev 2.6 (contrib), nvidia-cuda-dev 12.4
# (non-free, ~0.9 GB), libcu++-dev and libnccl-dev 2.22 (contrib, ~110 MB: nccl.h); their
# usr/include is unpacked into the cache folder (default .deps/torch2, git-ignored; ~1 GB of .deb
# files and ~0.2 GB of headers), never installed.
# The c10d files (src/parallel/job.cpp, c10d_communicator.cpp) are compiled twice: as they are, and
# with USE_C10D_NCCL (c10d's NCCL backend, which needs nccl.h). event.pb.h is generated with protoc (protobuf-compiler) into a scratch folder.
# Prints one line per file and a summary with the number of files compiled; exits 0 only when
# every one of them compiled, 1 otherwise (2 for bad usage).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.deps/torch2
jobs=$(nproc)
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) cache=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "check_torch2.sh: unknown option $1" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
command -v protoc >/dev/null || {
  echo "check_torch2.sh: protoc not found (Debian: protobuf-compiler; scripts/install_deps.sh installs it)" >&2
  exit 1; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debs=(
  pool/contrib/p/pytorch-cuda/libtorch-cuda-dev_2.6.0+dfsg-7+b1_amd64.deb
  pool/non-free/n/nvidia-cuda-toolkit/nvidia-cuda-dev_12.4.127~12.4.1-2_amd64.deb
  pool/main/c/cccl/libcu++-dev_2.3.2-2_all.deb
  pool/contrib/n/nvidia-nccl/libnccl-dev_2.22.3-1-1_amd64.deb
)
# The unpacked tree is named after the list of packages: a changed list unpacks afresh (the
# .deb files themselves stay cached by name).
root=$cache/root-$(printf '%s\n' "${debs[@]}" | sha256sum | cut -c1-12)
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
    # Headers only: the static libraries (2.7 GB unpacked) are never needed here.
    mkdir -p "$root.partial"
    dpkg-deb --fsys-tarfile "$f" | tar -x -C "$root.partial" --wildcards './usr/include/*'
  done
  touch "$root.partial/.complete"
  rm -rf "$root" && mv "$root.partial" "$root"
  # Trees unpacked for an older list of packages.
  for old in "$cache"/root "$cache"/root-*; do
    [ -e "$old" ] && [ "$old" != "$root" ] && rm -rf "$old"
  done
fi
inc=$root/usr/include
[ -f "$inc/ATen/cuda/CUDAGraph.h" ] || { echo "check_torch2.sh: $inc lacks ATen/cuda headers" >&2; exit 1; }
[ -f "$inc/nccl.h" ] || { echo "check_torch2.sh: $inc lacks nccl.h (libnccl-dev)" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/gen" "$scratch/logs"
protoc --cpp_out="$scratch/gen" -I src/tensorboard src/tensorboard/event.proto

# Compile units: "FILE" or "FILE nccl" (the same file again, NCCL branch on).
if [ ${#files[@]} -eq 0 ]; then
  mapfile -t files < <(ls src/*/*.cpp tests/*.cpp)
fi
units=()
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "check_torch2.sh: no such file $f" >&2; exit 2; }
  units+=("$f")
  case "$f" in src/parallel/job.cpp|src/parallel/c10d_communicator.cpp) units+=("$f nccl") ;; esac
done
check() {
  local f=${1% nccl} log=$2/$(echo "$1" | tr '/ ' '__').log extra=() label=$1
  if [ "$f" != "$1" ]; then extra=(-DUSE_C10D_NCCL=1); label="$f (NCCL)"; fi
  # The headers under -isystem come before /usr/include, so LibTorch 1.13's are never seen;
  # protobuf and Boost come from /usr/include (Debian 12's protobuf is trixie's, 3.21).
  # The tests' paths to the binaries only need to be string literals here.
  if g++ -std=gnu++17 -fsyntax-only -DRESNET_WITH_CUDA=1 -DRESNET_WITH_TENSORBOARD=1 \
       -D_GLIBCXX_USE_CXX11_ABI=1 "${extra[@]}" \
       -DRESNET_TRAIN_BIN='""' -DRESNET_EVAL_BIN='""' -DRESNET_ANALYZE_BIN='""' -DRESNET_BENCH_BIN='""' \
       -DRESNET_EXPORT_BIN='""' -DRESNET_BIN_DIR='""' -DRESNET_SOURCE_DIR='""' \
       -Wall -Wextra -Wno-unused-parameter -Isrc -I"$4" -isystem "$3" -isystem "$3/torch/csrc/api/include" \
       "$f" >"$log" 2>&1; then
    echo "ok    $label"
  else
    echo "FAIL  $label"; grep -m5 'error' "$log" | sed 's/^/      /'
  fi
}
export -f check
printf '%s\n' "${units[@]}" |
  xargs -P "$jobs" -I{} bash -c 'check "$@"' _ {} "$scratch/logs" "$inc" "$scratch/gen" | tee "$scratch/summary" ||
  true
ok=$(grep -c '^ok ' "$scratch/summary" || true)
failed=$(grep -c '^FAIL' "$scratch/summary" || true)
nccl=no
grep -q '^ok    src/parallel/c10d_communicator.cpp (NCCL)$' "$scratch/summary" &&
  grep -q '^ok    src/parallel/job.cpp (NCCL)$' "$scratch/summary" && nccl=yes
echo "LibTorch 2.6 + CUDA 12.4 headers: ${#units[@]} files compiled, $ok ok, $failed failed;" \
     "NCCL branch (src/parallel/{job,c10d_communicator}.cpp with USE_C10D_NCCL, nccl.h $(sed -n 's/^#define NCCL_VERSION_CODE //p' "$inc/nccl.h")) compiled: $nccl"
# Honest: every unit must have reported ok (a unit that crashed the checker reports nothing).
[ "$failed" = 0 ] && [ "$ok" = "${#units[@]}" ]
