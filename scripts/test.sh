#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and runs the whole test suite on one of the two builds:
#   scripts/test.sh [ctest args...]         Debian's LibTorch 1.13 (CPU), in build/
#   scripts/test.sh --pip [ctest args...]   PyPI's torch (python/requirements.txt, with CUDA), in build-pip/
# Both install the apt packages (scripts/install_deps.sh --test) and the pinned PyPI packages
# (scripts/python_env.sh: the Python side every interop test checks our files with). The Debian run
# also builds the libFuzzer targets (clang, ASan + UBSan) and replays their corpora once,
# deterministically (scripts/fuzz.sh --replay; a fresh search is scripts/fuzz.sh --seconds S, by
# hand; RESNET_SKIP_FUZZ=1 skips it). Tests that need the real CIFAR-10 read $CIFAR10_DIR (else
# data/cifar-10-batches-bin) and are skipped, with a message, when neither exists. gnuplot is
# required (install_deps.sh installs it): tests that draw fail without it.
# The last line counts passed, skipped and failed tests, and how many of the skipped need a CUDA
# device (CudaOnly.*): a test that could not run is reported as skipped, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=(scripts/build.sh)
build_dir=${BUILD_DIR:-build}
label="Debian LibTorch"
if [ "${1:-}" = --pip ]; then
  shift
  build=(scripts/build.sh --pip)
  build_dir=${BUILD_DIR:-build-pip}
  label="pip LibTorch"
fi
scripts/install_deps.sh --test
scripts/python_env.sh
BUILD_DIR=$build_dir "${build[@]}" -DRESNET_BUILD_TESTS=ON
if [ "$label" = "Debian LibTorch" ] && [ "${RESNET_SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh --replay
fi
if [ -z "${CIFAR10_DIR:-}" ] && [ -d data/cifar-10-batches-bin ]; then
  export CIFAR10_DIR="$PWD/data/cifar-10-batches-bin"
fi
junit=$PWD/$build_dir/ctest-results.xml
rc=0
(cd "$build_dir" && ctest --output-on-failure --output-junit "$junit" -j "$(nproc)" "$@") || rc=$?
/usr/bin/python3 - "$junit" "$label" "$("$build_dir/resnet-train" --version | sed -n 's/^libtorch: //p')" <<'PY' || true
import sys
import xml.etree.ElementTree as ET
cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
passed = skipped = failed = cuda_only = 0
for c in cases:
    status = c.get("status", "")
    if status == "run":
        passed += 1
    elif status in ("notrun", "disabled") or c.find("skipped") is not None:
        skipped += 1
        cuda_only += c.get("name", "").startswith("CudaOnly.")
    else:
        failed += 1
print(f"test summary ({sys.argv[2]} {sys.argv[3]}): {passed} passed, {skipped} skipped "
      f"({cuda_only} of them need a CUDA device), {failed} failed")
PY
exit "$rc"
