#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and runs the main job:
#   scripts/quickstart.sh [--pip] [CONFIG] [resnet-train flags...]
# Installs dependencies, builds the tools (not the tests), fetches CIFAR-10 if $CIFAR10_DIR / data/
# has none, trains CONFIG (default configs/quick.json: ResNet-20, a few minutes on a laptop CPU)
# into runs/, and evaluates the result with resnet-eval. The light default builds against Debian's
# LibTorch 1.13 (CPU) into build/; --pip against PyPI's torch with CUDA (scripts/python_env.sh,
# ~5 GB) into build-pip/, the build for a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build
build=(scripts/build.sh)
if [ "${1:-}" = --pip ]; then
  shift
  bin=build-pip
  build=(scripts/build.sh --pip)
fi
config=${1:-configs/quick.json}
shift || true
scripts/install_deps.sh
[ "$bin" = build ] || scripts/python_env.sh
"${build[@]}"
if [ -z "${CIFAR10_DIR:-}" ]; then
  scripts/get_cifar10.sh
  export CIFAR10_DIR="$PWD/data/cifar-10-batches-bin"
fi
name=$(basename "$config" .json)
run="runs/$name"
if [ -f "$run/checkpoints/last.ckpt" ] && [ ! -f "$run/summary.json" ]; then
  "$bin/resnet-train" --resume "$run" "$@"          # an interrupted run goes on
elif [ ! -f "$run/summary.json" ]; then
  "$bin/resnet-train" --config "$config" --out "$run" "$@"
fi
"$bin/resnet-eval" --checkpoint "$run" --json "$run/eval_test.json"
