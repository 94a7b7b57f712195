#!/usr/bin/env bash
# Configures and builds resnet-train. Extra args go to cmake (-DRESNET_BUILD_TESTS=ON for the tests).
#   scripts/build.sh [cmake args...]         against Debian's LibTorch 1.13 (CPU), into build/
#   scripts/build.sh --pip [cmake args...]   against the LibTorch inside .venv's torch (PyPI, with
#                                            CUDA; scripts/python_env.sh installs it), into build-pip/
# $BUILD_DIR overrides the folder. The pip build checks that its LibTorch is the version that
# python/requirements.txt pins. --target T... (after the cmake args) builds only those targets.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache (CMakeLists.txt uses it where installed) rewrites paths under the checkout to relative
# ones, so a second clone elsewhere hits the first one's cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
pip=0
if [ "${1:-}" = --pip ]; then pip=1; shift; fi
args=()
if [ "$pip" = 1 ]; then
  build_dir=${BUILD_DIR:-build-pip}
  py=${RESNET_VENV:-.venv}/bin/python
  [ -x "$py" ] || { echo "build.sh: no $py: run scripts/python_env.sh first" >&2; exit 2; }
  prefix=$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)') ||
    { echo "build.sh: $py cannot import torch: run scripts/python_env.sh" >&2; exit 2; }
  pin=$(sed -n 's/^torch==\([^ #]*\).*/\1/p' python/requirements.txt)
  args=(-DCMAKE_PREFIX_PATH="$prefix" -DRESNET_EXPECT_TORCH_VERSION="$pin"
        -DRESNET_PYTHON="$(cd "$(dirname "$py")/.." && pwd)/bin/python")
else
  build_dir=${BUILD_DIR:-build}
fi
cmake_args=() targets=()
while [ $# -gt 0 ]; do
  if [ "$1" = --target ]; then shift; targets=("$@"); break; fi
  cmake_args+=("$1"); shift
done
mkdir -p "$build_dir"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "${args[@]}" "${cmake_args[@]}" >"$build_dir.configure.log" 2>&1 || {
  cat "$build_dir.configure.log" >&2; exit 1; }
rm -f "$build_dir.configure.log"
cmake --build "$build_dir" -j "$(nproc)" ${targets[@]+--target "${targets[@]}"}
