#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and runs the whole test suite:
#   scripts/test.sh
# Tests that need the real CIFAR-10 read $CIFAR10_DIR (else data/cifar-10-batches-bin) and are
# skipped, with a message, when neither exists. gnuplot is required (install_deps.sh installs it):
# tests that draw fail without it. Before ctest, scripts/fuzz.sh --replay builds the
# libFuzzer targets (clang, ASan + UBSan) and replays their corpora once, deterministically
# (a fresh search is scripts/fuzz.sh --seconds S, run by hand); RESNET_SKIP_FUZZ=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --test
scripts/python_env.sh
scripts/build.sh -DRESNET_BUILD_TESTS=ON
if [ "${RESNET_SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh --replay
fi
if [ -z "${CIFAR10_DIR:-}" ] && [ -d data/cifar-10-batches-bin ]; then
  export CIFAR10_DIR="$PWD/data/cifar-10-batches-bin"
fi
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" "$@"
