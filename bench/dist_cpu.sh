#!/usr/bin/env bash
# Data-parallel training on the CPU: 1 process x T threads against P processes (Gloo ranks,
# launched with torchrun's variables) x T/P threads, same global batch, same steps. Prints a
# Markdown table: steps/s, images/s, and the gradient all-reduce's share of the training time
# (summary.json's allreduce_time_s / train_time_s, rank 0).
#   bench/dist_cpu.sh [--config configs/cifar_resnet20.json] [--steps 40] [--procs 2] [--threads 2]
# Needs CIFAR-10 ($CIFAR10_DIR or data/cifar-10-batches-bin) and a build (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
config=configs/cifar_resnet20.json
steps=40
procs=2
threads=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --procs) procs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "dist_cpu.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin=${BUILD_DIR:-build}/resnet-train
[ -x "$bin" ] || { echo "dist_cpu.sh: $bin not found (scripts/build.sh)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# No evaluation or checkpoint inside the timed steps: one of each at the end.
common=(--config "$config" --set "train.iterations=$steps" --set "train.eval_every=$steps"
        --set "train.log_every=$steps" --set data.test_limit=1000 --no-progress)

run() {  # run NAME PROCS THREADS_PER_PROC
  local name=$1 p=$2 t=$3 port=$((29500 + RANDOM % 1000)) pids=()
  for ((r = 0; r < p; r++)); do
    if [ "$p" -gt 1 ]; then
      RANK=$r WORLD_SIZE=$p LOCAL_RANK=$r LOCAL_WORLD_SIZE=$p MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
        "$bin" "${common[@]}" --set "runtime.threads=$t" --out "$work/$name" >"$work/$name.$r.log" 2>&1 &
    else
      "$bin" "${common[@]}" --set "runtime.threads=$t" --out "$work/$name" >"$work/$name.$r.log" 2>&1 &
    fi
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { cat "$work/$name".*.log >&2; exit 1; }; done
  /usr/bin/python3 - "$work/$name/summary.json" "$name" "$p" "$t" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
steps, train = s["steps"], s["train_time_s"]
ar = s.get("allreduce_time_s")
share = f"{100 * ar / train:.1f} %" if ar is not None else "-"
print(f"| {sys.argv[2]} | {sys.argv[3]} x {sys.argv[4]} | {steps / train:.2f} | {s['images_per_sec']:.0f} | {share} |")
EOF
}

echo "$(basename "$config"), $steps steps, global batch as configured, $(nproc) cores, $(date -u +%F)"
echo
echo "| run | processes x threads | steps/s | images/s | all-reduce share |"
echo "|---|---|---|---|---|"
run single 1 "$threads"
run ranks "$procs" $((threads / procs > 0 ? threads / procs : 1))
