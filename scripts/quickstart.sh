#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine and runs the main job:
#   scripts/quickstart.sh [CONFIG] [resnet-train flags...]
# Installs dependencies, builds, fetches CIFAR-10 if $CIFAR10_DIR / data/ has none, trains
# CONFIG (default configs/quick.json: ResNet-20, a few minutes on a laptop CPU) into runs/,
# and evaluates the result with resnet-eval.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/quick.json}
shift || true
scripts/install_deps.sh
scripts/build.sh
if [ -z "${CIFAR10_DIR:-}" ]; then
  scripts/get_cifar10.sh
  export CIFAR10_DIR="$PWD/data/cifar-10-batches-bin"
fi
name=$(basename "$config" .json)
run="runs/$name"
if [ -f "$run/checkpoints/last.ckpt" ] && [ ! -f "$run/summary.json" ]; then
  build/resnet-train --resume "$run" "$@"          # an interrupted run goes on
elif [ ! -f "$run/summary.json" ]; then
  build/resnet-train --config "$config" --out "$run" "$@"
fi
build/resnet-eval --checkpoint "$run" --json "$run/eval_test.json"
