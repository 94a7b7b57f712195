#!/usr/bin/env bash
# Which LibTorch trains faster on this CPU: Debian's 1.13 (build/) or PyPI's torch (build-pip/),
# with the plain PyTorch script on PyPI's torch beside them, in one sitting. For each depth and
# precision (fp32; bf16 autocast), channels_last, batch 128, all cores:
#   resnet-bench --mode step    the trainer's step (batches, augmentation, step)
#   resnet-bench --mode train   a run of --epoch-images training images end to end (data, steps,
#                               one test evaluation): the epoch
#   resnet-bench --mode convs   the network's own convolutions alone, forward and both backward:
#                               the limit of the step through the same torch
#   pytorch_reference.py --mode bare / convs on .venv's torch, the same shapes
# Prints a Markdown table (step img/s, its share of the convolutions' limit, epoch img/s); every
# raw JSON line goes to --out.
#   bench/cpu_builds.sh [--depths "20 56"] [--steps N] [--epoch-images N] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
depths="20 56"
steps=20
epoch_images=12800
out=bench/cpu_builds.jsonl
while [ $# -gt 0 ]; do
  case "$1" in
    --depths) depths=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --epoch-images) epoch_images=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "cpu_builds.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
py=${RESNET_VENV:-.venv}/bin/python
for b in build build-pip; do
  [ -x "$b/resnet-bench" ] || { echo "cpu_builds.sh: no $b/resnet-bench (scripts/build.sh; scripts/build.sh --pip)" >&2; exit 2; }
done
[ -x "$py" ] || { echo "cpu_builds.sh: no $py (scripts/python_env.sh)" >&2; exit 2; }
: >"$out"
run() { echo "+ $*" >&2; "$@" | tail -n 1 | tee -a "$out" >/dev/null; }
for d in $depths; do
  cfg=configs/cifar_resnet$d.json
  for precision in fp32 bf16; do
    set_p=(--set runtime.precision=$precision --set runtime.channels_last=true)
    for b in build build-pip; do
      run "$b/resnet-bench" --config "$cfg" --mode step --steps "$steps" "${set_p[@]}"
      run "$b/resnet-bench" --config "$cfg" --mode convs --steps 5 "${set_p[@]}"
      run "$b/resnet-bench" --config "$cfg" --mode train "${set_p[@]}" --set train.epochs=1 \
        --set data.train_limit="$epoch_images" --set train.eval_every=0 --set train.checkpoint_every=0
    done
    bf=(); [ "$precision" = bf16 ] && bf=(--bf16)
    run "$py" bench/pytorch_reference.py --mode bare --depth "$d" --steps "$steps" --channels-last "${bf[@]}"
    run "$py" bench/pytorch_reference.py --mode convs --depth "$d" --steps 5 --channels-last "${bf[@]}"
  done
done
"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def impl(r):
    return "PyTorch (Python)" if r.get("impl") == "pytorch" else "resnet-train"
table = {}
for r in rows:
    key = (r["model"], r["precision"], impl(r), r["torch_version"])
    table.setdefault(key, {})[r["mode"]] = r
print("| model | precision | implementation | torch | step img/s | convs alone img/s | step / convs | epoch img/s |")
print("|---|---|---|---|---|---|---|---|")
for (model, precision, who, torch), m in table.items():
    step = m.get("step") or m.get("bare")
    convs = m.get("convs")
    epoch = m.get("train")
    share = f"{100 * step['images_per_sec'] / convs['images_per_sec']:.0f} %" if step and convs else ""
    print(f"| {model} | {precision} | {who} | {torch} | {step['images_per_sec']:.0f} | "
          f"{convs['images_per_sec']:.0f} | {share} | {epoch['images_per_sec']:.0f} |" if epoch else
          f"| {model} | {precision} | {who} | {torch} | {step['images_per_sec']:.0f} | "
          f"{convs['images_per_sec']:.0f} | {share} | |")
print(f"\ncpu: {rows[0]['device']}, {rows[0]['threads']} threads")
PY
