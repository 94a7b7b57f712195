#!/usr/bin/env bash
# Degradation of plain nets vs residual nets with depth (He et al. 2015, Fig. 6).
#   scripts/depth_sweep.sh [--quick] [--depths "20 32 44 56"] [--out DIR] [--recipe FILE]
#                          [--data-dir DIR] [--bin DIR] [--set key=value]...
# Trains plain-D and resnet-D for each depth with one recipe (default: the paper's, from
# configs/cifar_resnet20.json; --quick: 400 iterations, about 25 minutes in all on a 2-core CPU for
# the default depths), then writes into DIR: training_error.png, test_error.png (plain left,
# ResNet right, one curve per depth), summary.csv and summary.md.
# Re-running skips finished runs and resumes interrupted ones.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
depths="20 32 44 56"
quick=0
out=""
recipe="$root/configs/cifar_resnet20.json"
bin="$root/build"
data_args=()
sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --depths) depths=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --recipe) recipe=$2; shift 2 ;;
    --data-dir) data_args=(--data-dir "$2"); shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "depth_sweep.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || out="sweeps/$([ $quick = 1 ] && echo quick || echo paper)"
[ -x "$bin/resnet-train" ] || { echo "depth_sweep.sh: $bin/resnet-train not found (run scripts/build.sh)" >&2; exit 2; }
[ -f "$recipe" ] || { echo "depth_sweep.sh: recipe $recipe not found" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "depth_sweep.sh: gnuplot not found (scripts/install_deps.sh)" >&2; exit 2; }
mkdir -p "$out"

if [ $quick = 1 ]; then
  # Short schedule: long enough for the ordering to show, short enough for a laptop CPU.
  # A linear warm-up over the first 100 steps: at lr 0.1 from step 0, ResNet-56 (and the deeper
  # plain nets) sit at chance for hundreds of steps, too long for a 400-step run (the paper warms
  # ResNet-110 up for the same reason).
  sets=(--set train.iterations=400 --set 'train.lr_schedule.milestones=[300,360]'
        --set train.lr_schedule.warmup='"linear"' --set train.lr_schedule.warmup_steps=100
        --set train.eval_every=50 --set train.checkpoint_every=50 --set train.log_every=50
        --set data.test_limit=2000 "${sets[@]}")
fi

for kind in plain resnet; do
  for d in $depths; do
    run="$out/$kind-$d"
    residual=$([ $kind = resnet ] && echo true || echo false)
    if [ -f "$run/summary.json" ]; then
      echo "skip   $run (finished)"
    elif [ -f "$run/checkpoints/last.ckpt" ]; then
      echo "resume $run"
      "$bin/resnet-train" --resume "$run" "${data_args[@]}" --no-progress
    else
      echo "train  $run"
      "$bin/resnet-train" --config "$recipe" --set model.depth="$d" --set model.residual=$residual \
        --set name="\"$kind-$d\"" "${sets[@]}" "${data_args[@]}" --out "$run" --force --no-progress
    fi
  done
done

# summary.csv / summary.md from each run's summary.json and last metrics row.
{
  echo "model,kind,depth,parameters,steps,final_train_error,final_test_error"
  for kind in plain resnet; do
    for d in $depths; do
      run="$out/$kind-$d"
      last=$(tail -n 1 "$run/metrics.csv")
      params=$(grep -o '"parameters": *[0-9]*' "$run/summary.json" | grep -o '[0-9]*$')
      IFS=, read -r step _ _ _ train_err _ test_err _ <<<"$last"
      echo "$kind-$d,$kind,$d,$params,$step,$train_err,$test_err"
    done
  done
} >"$out/summary.csv"
{
  echo "| model | parameters | steps | final training error | final test error |"
  echo "|---|---|---|---|---|"
  tail -n +2 "$out/summary.csv" | while IFS=, read -r model _ _ params steps train test; do
    printf '| %s | %s | %s | %.2f%% | %.2f%% |\n' "$model" "$params" "$steps" \
      "$(awk "BEGIN{print 100*$train}")" "$(awk "BEGIN{print 100*$test}")"
  done
} >"$out/summary.md"

# Plots: He et al. Fig. 6 layout, plain nets left, ResNets right, one curve per depth.
plot() {  # plot <png> <csv column> <what>
  local png=$1 col=$2 what=$3 gp="$out/${1%.png}.gp"
  {
    echo "set terminal pngcairo size 1400,540 noenhanced font 'Sans,11'"
    echo "set output '$out/$png'"
    echo "set datafile separator ','"
    echo "set grid; set key top right box opaque"
    echo "set multiplot layout 1,2 title '$what error vs iterations (He et al. 2015, Fig. 6)' font 'Sans,14'"
    for kind in plain resnet; do
      echo "set title '$([ $kind = plain ] && echo 'plain networks' || echo 'ResNets')'"
      echo "set xlabel 'iterations'; set ylabel '$what error (%)'; set yrange [0:*]"
      local items=()
      for d in $depths; do
        items+=("'$out/$kind-$d/metrics.csv' skip 1 using 1:(100*\$$col) with linespoints lw 2 title '$kind-$d'")
      done
      local joined
      joined=$(printf '%s, ' "${items[@]}")
      echo "plot ${joined%, }"
    done
    echo "unset multiplot"
  } >"$gp"
  gnuplot "$gp"
}
plot training_error.png 5 training
plot test_error.png 7 test
echo "wrote $out/training_error.png $out/test_error.png $out/summary.csv $out/summary.md"
cat "$out/summary.md"
