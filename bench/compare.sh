#!/usr/bin/env bash
# resnet-train against the usual Python PyTorch script, same machine, same session.
#   bench/compare.sh [--depths "20 56"] [--epochs E] [--train-limit N] [--workers W] [--steps N] [--out FILE]
# For each depth: the bare model step (eager fp32; on CUDA also Python bf16 + channels_last and
# the C++ graph step), one end-to-end epoch (data, augmentation, steps, one test evaluation) and
# test-set evaluation. --epochs 2 (C++ only) also reports the second epoch alone: a steady-state
# epoch without the run's start-up. Prints a Markdown table; every raw JSON line goes to --out.
set -euo pipefail
cd "$(dirname "$0")/.."
depths="20 56"
limit=0
epochs=1
steps=30
out=bench/results.jsonl
py=${PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3
cuda=$($py -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
workers=$([ "$cuda" = 1 ] && nproc || echo 2)
while [ $# -gt 0 ]; do
  case "$1" in
    --depths) depths=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --train-limit) limit=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin=${BUILD_DIR:-build}
[ -x "$bin/resnet-bench" ] || { echo "build first: scripts/build.sh" >&2; exit 2; }
: >"$out"

run() { "$@" | tee -a "$out"; }
for d in $depths; do
  cfg=configs/cifar_resnet$d.json
  epoch=(--set train.epochs=$epochs --set train.eval_every=0 --set train.checkpoint_every=0 --set data.train_limit=$limit)
  # The bare step is timed on both sides of the epoch: this shared machine drifts by up to 10%.
  run "$bin/resnet-bench" --config "$cfg" --mode bare --steps "$steps"
  run "$bin/resnet-bench" --config "$cfg" --mode step --steps "$steps"
  run "$bin/resnet-bench" --config "$cfg" --mode train "${epoch[@]}"
  run "$bin/resnet-bench" --config "$cfg" --mode bare --steps "$steps"
  run "$bin/resnet-bench" --config "$cfg" --mode eval --steps 10
  run $py bench/pytorch_reference.py --mode bare --depth "$d" --steps "$steps"
  if [ "$cuda" = 1 ]; then
    run $py bench/pytorch_reference.py --mode bare --depth "$d" --steps "$steps" --bf16 --channels-last
  else
    run $py bench/pytorch_reference.py --mode bare --depth "$d" --steps "$steps" --channels-last
  fi
  run $py bench/pytorch_reference.py --mode train --depth "$d" --workers "$workers" --train-limit "$limit"
  run $py bench/pytorch_reference.py --mode eval --depth "$d" --workers "$workers"
done >/dev/null

$py - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| impl | model | mode | precision | channels_last | graph | ms/step | images/s | wall s | test err |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    f = lambda k, fmt="{:.1f}": fmt.format(r[k]) if isinstance(r.get(k), (int, float)) else ""
    print(f"| {r.get('impl', 'resnet-train')} | {r['model']} | {r['mode']} | {r['precision']} | {r['channels_last']} "
          f"| {r.get('cuda_graph', '')} | {f('ms_per_step')} | {f('images_per_sec', '{:.0f}')} | {f('wall_s')} | {f('test_error', '{:.3f}')} |")
print(f"\ndevice: {rows[0]['device']}, torch {rows[0]['torch_version']}")
# The end-to-end epoch against the bare model step (mean of the runs before and after it).
for model in dict.fromkeys(r["model"] for r in rows):
    mine = [r for r in rows if r["model"] == model and "impl" not in r]
    bare = [r["images_per_sec"] for r in mine if r["mode"] == "bare"]
    for e in (r for r in mine if r["mode"] == "train"):
        ref = sum(bare) / len(bare)
        print(f"{model}: epoch {e['images_per_sec']:.0f} img/s end to end = {100 * e['images_per_sec'] / ref:.1f}% "
              f"of the bare step ({ref:.0f} img/s, runs {', '.join(f'{b:.0f}' for b in bare)}); steps alone "
              f"{e['train_images_per_sec']:.0f} img/s ({100 * e['train_images_per_sec'] / ref:.1f}%); of "
              f"{e['wall_s']:.1f} s: steps {e['train_s']:.1f}, evaluation {e['eval_s']:.1f}, other {e['other_s']:.1f}")
        if "last_period_s" in e:
            print(f"{model}: last epoch alone (steps, evaluation, checkpoint; no start-up) {e['last_period_s']:.1f} s, "
                  f"{e['last_period_images_per_sec']:.0f} img/s = {100 * e['last_period_images_per_sec'] / ref:.1f}% of the bare step")
PY
