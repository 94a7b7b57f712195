#!/usr/bin/env bash
# Degradation of plain nets vs residual nets with depth (He et al. 2015, Fig. 6 and Table 6).
#   scripts/depth_sweep.sh [--quick] [--depths "20 32 44 56"] [--seeds 0,1,2] [--out DIR] [--recipe FILE]
#                          [--data-dir DIR] [--bin DIR] [--set key=value]... [--analyze]
#                          [--jobs N] [--devices 0,1,...] | [--slurm "SBATCH ARGS" [--dry-run]]
# Trains plain-D and resnet-D for each depth and seed with one recipe (default: the paper's, from
# configs/cifar_resnet20.json; --quick: 400 iterations, about 25 minutes in all on a 2-core CPU for
# the default depths and one seed). Each (kind, depth, seed) is one run folder, DIR/resnet-20-s1;
# without --seeds, DIR/resnet-20 with the recipe's seed. Re-running skips finished runs and resumes
# interrupted ones; a resumed run gets this sweep's --set values through resnet-train's resume rules
# (a key a resume may change is changed and recorded in its config.json, any other is refused), and
# a finished run whose config.json lacks one of them is resumed with it too (e.g. a raised
# train.iterations). The first run that fails before training (resnet-train exit 2, or no training
# started) stops the sweep with its one-line reason: no further run starts, running ones stop at a
# checkpoint (Slurm: the array's pending tasks are cancelled), and no summary is written.
#   --jobs N     N runs at once (GNU parallel): each on its own GPU, CUDA_VISIBLE_DEVICES round-robin
#                over --devices (default: $CUDA_VISIBLE_DEVICES, else every GPU of nvidia-smi -L), or
#                on the CPU with cores/N threads each (unless --set runtime.threads=...). Ctrl-C stops
#                every run at a checkpoint (exit 130); re-running resumes them.
#   --slurm ARGS one Slurm job array (sbatch ARGS --array=0-K, a task per unfinished run; a requeued
#                task resumes its folder) and a job that writes the summary after it (afterany).
#                Scripts and logs go to DIR/slurm/; --dry-run prints them instead of submitting.
#   --analyze    also resnet-analyze the nets of the first seed into DIR/analysis/: responses (Fig. 7,
#                shallowest and deepest of each kind), lesions (Veit et al.), the loss landscape pair
#                and the Hessian numbers (deepest plain vs deepest ResNet: Li et al., PyHessian), and
#                the paths gradients take (deepest ResNet, Veit et al. Fig. 6).
# Writes into DIR: summary.md, summary.csv, summary.json (mean ± std, min, max of the final test and
# training error over seeds, against the paper's Table 6), runs.csv, training_error.png and
# test_error.png (plain left, ResNet right, mean curve and min-max band per depth), and report.html
# (summary.md with the pictures inline). Exit: 0 done, 2 bad usage (or a run refused its input), 1 a
# run failed, 130 interrupted.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
root=$(cd "$(dirname "$0")/.." && pwd)
depths="20 32 44 56"
seeds_opt=""
quick=0
out=""
recipe="$root/configs/cifar_resnet20.json"
bin="$root/build"
data_args=()
sets=()
jobs=1
devices_opt=""
slurm=""
slurm_given=0
dry_run=0
analyze=0
run_one=0
run_one_spec=""   # internal: --run-one KIND:DEPTH:SEED [SLOT], one run (a parallel job or a Slurm task)
run_slot=1
run_threads=""    # internal: threads for --run-one
run_tag=0         # internal: --run-one prefixes its output lines with the run's name
run_parent=""     # internal: --run-one's sweep on this host, told (SIGUSR1) when the sweep must stop
summary_only=0    # internal: the summary step alone (the Slurm summary job)
die() { echo "depth_sweep.sh: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; shift ;;
    --depths) need "$@"; depths=$2; shift 2 ;;
    --seeds) need "$@"; seeds_opt=$2; shift 2 ;;
    --out) need "$@"; out=$2; shift 2 ;;
    --recipe) need "$@"; recipe=$2; shift 2 ;;
    --data-dir) need "$@"; data_args=(--data-dir "$2"); shift 2 ;;
    --bin) need "$@"; bin=$2; shift 2 ;;
    --set) need "$@"; sets+=(--set "$2"); shift 2 ;;
    --jobs) need "$@"; jobs=$2; shift 2 ;;
    --devices) need "$@"; devices_opt=$2; shift 2 ;;
    --slurm) need "$@"; slurm=$2; slurm_given=1; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --analyze) analyze=1; shift ;;
    --run-one) need "$@"; run_one=1; run_one_spec=$2; shift 2
               if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then run_slot=$1; shift; fi ;;
    --run-threads) need "$@"; run_threads=$2; shift 2 ;;
    --run-tag) run_tag=1; shift ;;
    --summary-only) summary_only=1; shift ;;
    --run-parent) need "$@"; run_parent=$2; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

# ---- checks: one line and exit 2 before anything is written --------------------------------
[ -n "$out" ] || out="sweeps/$([ $quick = 1 ] && echo quick || echo paper)"
for d in $depths; do
  [[ $d =~ ^[1-9][0-9]*$ ]] || die "--depths: '$d' is not a depth (e.g. --depths \"20 32\")"
done
[ -n "${depths// /}" ] || die "--depths: no depth given"
seeds=()
if [ -n "$seeds_opt" ]; then
  [[ $seeds_opt =~ ^(0|[1-9][0-9]*)(,(0|[1-9][0-9]*))*$ ]] ||
    die "--seeds: '$seeds_opt' is not a comma list of seeds (e.g. --seeds 0,1,2)"
  IFS=, read -ra seeds <<<"$seeds_opt"
fi
# The same run twice would be two trainings in one folder (the second fails on its lock).
[ -z "$(tr ' ' '\n' <<<"$depths" | grep . | sort | uniq -d)" ] || die "--depths: '$depths' names a depth twice"
[ -z "$(printf '%s\n' "${seeds[@]}" | sort | uniq -d)" ] || die "--seeds: '$seeds_opt' names a seed twice"
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "--jobs: '$jobs' is not a positive number"
[ -z "$devices_opt" ] || [[ $devices_opt =~ ^[0-9A-Za-z-]+(,[0-9A-Za-z-]+)*$ ]] ||
  die "--devices: '$devices_opt' is not a comma list of GPUs (e.g. --devices 0,1)"
[ $slurm_given = 0 ] || [ $jobs = 1 ] || die "--jobs and --slurm exclude each other (Slurm schedules the runs)"
[ $dry_run = 0 ] || [ $slurm_given = 1 ] || die "--dry-run prints the Slurm scripts: it needs --slurm"
[ -x "$bin/resnet-train" ] || die "$bin/resnet-train not found (run scripts/build.sh, or pass --bin DIR)"
[ $analyze = 0 ] || [ -x "$bin/resnet-analyze" ] || die "$bin/resnet-analyze not found (run scripts/build.sh)"
[ -f "$recipe" ] || die "recipe $recipe not found"
python=$(command -v python3 || true)
[ -x /usr/bin/python3 ] && python=/usr/bin/python3  # the system one: the summary needs only its stdlib
[ $run_one = 0 ] || [[ $run_one_spec =~ ^(plain|resnet):[1-9][0-9]*:[0-9]*$ ]] ||
  die "--run-one: '$run_one_spec' is not KIND:DEPTH:SEED (outside a Slurm array task?)"
if [ $run_one = 0 ] && [ $slurm_given = 0 ]; then  # what this host runs itself
  [ -n "$python" ] || die "python3 not found (scripts/install_deps.sh)"
  command -v gnuplot >/dev/null || die "gnuplot not found (scripts/install_deps.sh)"
  [ $summary_only = 1 ] || command -v parallel >/dev/null || die "GNU parallel not found (scripts/install_deps.sh)"
fi
if [ $slurm_given = 1 ] && [ $dry_run = 0 ]; then
  command -v sbatch >/dev/null || die "--slurm: sbatch not found (no Slurm client on this host; --dry-run prints the scripts)"
fi

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

# The runs, as KIND:DEPTH:SEED (SEED empty: the recipe's seed, the single-seed layout of old).
runs=()
for kind in plain resnet; do
  for d in $depths; do
    if [ ${#seeds[@]} -eq 0 ]; then runs+=("$kind:$d:"); continue; fi
    for s in "${seeds[@]}"; do runs+=("$kind:$d:$s"); done
  done
done
run_dir() {  # run_dir KIND:DEPTH:SEED
  local kind d s
  IFS=: read -r kind d s <<<"$1"
  if [ -z "$s" ]; then echo "$out/$kind-$d"; else echo "$out/$kind-$d-s$s"; fi
}
# check_recipe RUN...: resnet-train --dry-run for each depth among the runs; a bad recipe, depth
# or --set is exit 2 with resnet-train's own line, before anything is written.
check_recipe() {
  local d err
  for d in $(for r in "$@"; do IFS=: read -r _ d _ <<<"$r"; echo "$d"; done | sort -un); do
    err=$("$bin/resnet-train" --config "$recipe" --set model.depth="$d" "${sets[@]}" "${data_args[@]}" \
            --dry-run 2>&1 >/dev/null) || die "depth $d: $(tail -n 1 <<<"$err")"
  done
}
user_sets_threads=0
for x in "${sets[@]}"; do if [[ $x == runtime.threads=* ]]; then user_sets_threads=1; fi; done

# ---- one run: skip it, resume it, or start it ----------------------------------------------
# set_differs RUN_DIR: this sweep's --set values that the run's config.json does not hold, as
# "key=value" (nothing when it holds them all). Values are read as resnet-train reads them (JSON,
# else a bare word); an object value is compared key by key.
set_differs() {
  [ ${#sets[@]} -gt 0 ] || return 0
  SWEEP_SCRIPTS="$root/scripts" "$python" - "$1/config.json" "${sets[@]}" <<'PY'
import json, os, sys
sys.path.insert(0, os.environ["SWEEP_SCRIPTS"])
from sweep_report import JSON_BYTES, parse_json, printable, read_bytes  # bounded, never through a symlink
try:
    config = parse_json(read_bytes(sys.argv[1], JSON_BYTES).decode("utf-8"))
except (OSError, ValueError) as e:
    sys.exit(print(f"its config.json is unreadable ({printable(str(e))})"))
def same(have, want):
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and same(have[k], v) for k, v in want.items())
    if isinstance(have, bool) or isinstance(want, bool):  # JSON true is not 1
        return have is want
    return have == want
for a in sys.argv[2:]:
    if a == "--set":
        continue
    key, _, text = a.partition("=")
    try:
        want = json.loads(text)
    except ValueError:
        want = text
    node = config
    for part in key.split("."):
        node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
    if node is KeyError or not same(node, want):
        print(a)
PY
}
# no_link PATH: a sweep folder is opened, not trusted (docs/safety.md): a symlink where one of its
# run folders, folders or files should be is refused (exit 2), never followed out of the sweep.
no_link() { [ ! -L "$1" ] || die "$1: is a symlink (refused: nothing in a sweep folder is followed out of it)"; }
# write_new PATH: stdin into PATH, created new (whatever was under its name, a symlink included, is
# removed first, and noclobber opens it O_EXCL): never written through a symlink.
write_new() { rm -f "$1" && (set -C; cat >"$1"); }
# stop_file: the first run that fails before training writes its exit code and its one-line reason
# there; runs that would start after it do not, and the sweep (or the Slurm summary job) reports it.
stop_file() { echo "$out/stopped.txt"; }
# stop_sweep RC REASON: the first caller writes the stop file (noclobber: one winner), then stops
# what else would run: the sweep on this host (SIGUSR1: it interrupts GNU parallel) or, in a Slurm
# array task, the array's pending tasks.
stop_sweep() {
  (set -C; printf '%s\n%s\n' "$1" "$2" >"$(stop_file)") 2>/dev/null || return 0
  echo "depth_sweep.sh: ${2%% failed before training:*} failed before training (exit $1): stopping the sweep" >&2
  if [ -n "$run_parent" ]; then
    kill -USR1 "$run_parent" 2>/dev/null || true
  elif [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then
    scancel --state=PENDING "$SLURM_ARRAY_JOB_ID" 2>/dev/null || true
  fi
}
# run_trainer RUN_DIR WHAT CMD...: runs resnet-train in the foreground. Signals reach it directly (GNU
# parallel signals the job's process group, Slurm every process of the task); the traps only keep
# this shell waiting until it has checkpointed. A failure before training (exit 2: bad input, which
# resnet-train finds before it trains; or no "starting/resuming run" line added to train.log) stops
# the sweep: the next runs would most likely fail the same way (no data, a refused --set).
run_trainer() {
  local run=$1 what=$2 err rc starts
  shift 2
  err=$(mktemp)
  starts=$(count_starts "$run")
  trap ':' INT TERM  # not '': an ignored signal would be ignored by resnet-train too
  # Its stderr also into $err (for the reason); tee ignores the signals, like the tagging sed.
  set +e
  exec 3>&1
  "$@" 2>&1 1>&3 3>&- | (trap '' INT TERM; exec tee "$err") >&2
  rc=${PIPESTATUS[0]}
  exec 3>&-
  set -e
  trap - INT TERM
  local before_training=0
  case $rc in
    0|130|143) ;;
    2) before_training=1 ;;
    *) [ "$(count_starts "$run")" != "$starts" ] || before_training=1 ;;
  esac
  if [ $before_training = 1 ]; then
    local reason
    reason=$({ grep -v '^[[:space:]]*$' "$err" || true; } | tail -n 1)
    stop_sweep "$rc" "$(basename "$run") $what failed before training: ${reason:-resnet-train exited $rc}"
  fi
  rm -f "$err"
  return $rc
}
# up_to_date RUN_DIR: finished, with every --set value of this sweep.
up_to_date() { [ -f "$1/summary.json" ] && [ -z "$(set_differs "$1")" ]; }
# count_starts RUN_DIR: how many times training started in the run (resnet-train logs "starting run"
# or "resuming run" once its inputs are checked, before the first step).
count_starts() { { grep -sE "(starting|resuming) run '" "$1/train.log" || true; } | wc -l; }

if [ $run_one = 1 ]; then
  IFS=: read -r kind d s <<<"$run_one_spec"
  run=$(run_dir "$run_one_spec")
  no_link "$run"
  differs=""
  if [ -f "$run/summary.json" ]; then
    differs=$(set_differs "$run")
    if [ -z "$differs" ]; then echo "skip   $run (finished)"; exit 0; fi
  fi
  if [ -f "$(stop_file)" ]; then echo "skip   $run (the sweep is stopping: $(tail -n 1 "$(stop_file)"))"; exit 0; fi
  if [ $run_tag = 1 ]; then
    # Several runs share the terminal: tag each line. sed ignores SIGINT/SIGTERM so that it keeps
    # reading (a dead reader would make resnet-train die of SIGPIPE before its checkpoint).
    exec > >(trap '' INT TERM; exec sed -u "s/^/[$(basename "$run")] /") 2>&1
  fi
  extra=() where=""
  [ -n "$run_threads" ] || [ -z "${SLURM_CPUS_PER_TASK:-}" ] || run_threads=$SLURM_CPUS_PER_TASK
  if [ -n "$run_threads" ] && [ $user_sets_threads = 0 ]; then
    extra+=(--set "runtime.threads=$run_threads")
    where=" (runtime.threads=$run_threads)"
  fi
  if [ -n "$devices_opt" ]; then
    IFS=, read -ra devs <<<"$devices_opt"
    export CUDA_VISIBLE_DEVICES=${devs[$(( (run_slot - 1) % ${#devs[@]} ))]}
    where=" on GPU $CUDA_VISIBLE_DEVICES$where"
  fi
  if [ -f "$run/config.json" ]; then
    # The sweep's --set values go through resnet-train's resume rules: changed and recorded in
    # config.json's resume_changes, or refused (exit 2, naming the key), which stops the sweep.
    [ -z "$differs" ] || where="$where (finished; new: $(paste -sd' ' <<<"$differs"))"
    echo "resume $run$where"
    run_trainer "$run" "(resumed with this sweep's --set values)" \
      "$bin/resnet-train" --resume "$run" "${extra[@]}" "${sets[@]}" "${data_args[@]}" --no-progress
    exit
  fi
  echo "train  $run$where"
  seed_set=()
  [ -z "$s" ] || seed_set=(--set "runtime.seed=$s")
  name=$(basename "$run")
  run_trainer "$run" "(started)" "$bin/resnet-train" --config "$recipe" --set model.depth="$d" \
    --set model.residual="$([ "$kind" = resnet ] && echo true || echo false)" --set name="\"$name\"" \
    "${seed_set[@]}" "${extra[@]}" "${sets[@]}" "${data_args[@]}" --out "$run" --force --no-progress
  exit
fi

# ---- the summary: analyses, tables, plots, report.html -------------------------------------
# A failed analysis does not cost the summary: the tables and plots are written first-class, the
# analysis is left out of the report, and the exit status says so.
summarize() {
  local analysis=() failed=0 a rc
  stopped || return
  if [ $analyze = 1 ]; then
    for a in responses lesion landscape hessian paths; do
      rc=0; analyse "$a" || rc=$?
      if [ $rc = 0 ]; then analysis+=(--analysis "$out/analysis/$a"); elif [ $rc = 1 ]; then failed=1; fi
    done
  fi
  local specs=() r
  for r in "${runs[@]}"; do specs+=(--run "$r:$(run_dir "$r")"); done
  rc=0
  "$python" "$root/scripts/sweep_report.py" --out "$out" "${specs[@]}" "${analysis[@]}" "${sets[@]}" \
    --recipe "$recipe${sets[*]:+ with ${sets[*]}}" || rc=$?
  [ $rc = 0 ] || [ $rc = 3 ] || { echo "depth_sweep.sh: the summary failed (exit $rc)" >&2; return 1; }
  local wrote=()
  for a in summary.md summary.csv summary.json runs.csv training_error.png test_error.png report.html; do
    [ ! -f "$out/$a" ] || wrote+=("$out/$a")
  done
  echo "wrote ${wrote[*]}"
  cat "$out/summary.md"
  [ $rc = 0 ] || { echo "depth_sweep.sh: some runs did not finish (listed above); re-run to resume them" >&2; return 1; }
  return $failed
}
# stopped: 0 unless a run failed before training (the stop file); then its reason on stderr and
# the status the sweep ends with: 2 when resnet-train refused its input, else 1.
stopped() {
  no_link "$(stop_file)"
  [ -f "$(stop_file)" ] || return 0
  local rc reason
  { read -r rc; read -r reason; } <"$(stop_file)" || true
  echo "depth_sweep.sh: stopped: ${reason:-a run failed before training}; no summary written (fix that and run the same command again)" >&2
  [ "${rc:-1}" = 2 ] && return 2 || return 1
}
# analyse NAME: resnet-analyze on the first seed's nets. Fig. 7 (responses) needs shallow and deep
# nets of both kinds, the paths the deepest ResNet (a plain net has one path), the others the deepest
# of both kinds. 0 done or up to date, 1 failed, 2 runs missing.
analyse() {
  local a=$1 shallow deep first=${seeds[0]:-} nets m r fresh=1 f dir="$out/analysis/$1" ckpts=() extra=()
  no_link "$out/analysis"
  no_link "$dir"
  shallow=$(tr ' ' '\n' <<<"$depths" | grep . | sort -n | head -1)
  deep=$(tr ' ' '\n' <<<"$depths" | grep . | sort -n | tail -1)
  nets="plain:$deep resnet:$deep"
  [ "$a" != responses ] || nets="plain:$shallow plain:$deep resnet:$shallow resnet:$deep"
  [ "$a" != paths ] || nets="resnet:$deep"
  # Sized for a 2-core CPU (plain-56 and ResNet-56 after 400 steps, measured: landscape 2.5 min,
  # hessian 6.5 min, paths 20 s): an 11x11 grid on 500 training images; the top 2 eigenvalues (at
  # most 30 power iterations each), 8 probes and 15 Lanczos steps on 64 images; 5 samples per
  # path length on 64 images.
  case $a in
    landscape) extra=(--grid 11 --images 500) ;;
    hessian) extra=(--images 64 --top-k 2 --max-iterations 30 --probes 8 --lanczos-steps 15) ;;
    paths) extra=(--images 64 --samples 5) ;;
  esac
  for m in $(tr ' ' '\n' <<<"$nets" | awk '!seen[$0]++'); do
    r=$(run_dir "$m:$first")
    [ -f "$r/summary.json" ] || { echo "skip   analysis $a: $r is not finished"; return 2; }
    ckpts+=(--checkpoint "$r")
    [ "$dir/$a.json" -nt "$r/summary.json" ] || fresh=0
    # The landscape's points written as it goes (resumed by a re-run) belong to the nets they were
    # computed on: older than a net's summary, they are another net's and go.
    for f in "$dir"/landscape_*.jsonl; do
      [ ! -e "$f" ] || [ "$f" -nt "$r/summary.json" ] || rm -f "$dir"/landscape_*.jsonl "$dir"/directions_*.safetensors
    done
  done
  if [ $fresh = 1 ]; then echo "skip   analysis $a (up to date)"; return 0; fi
  echo "analyse $a -> $dir"
  rm -f "$out/analysis-$a.log"
  (set -C; "$bin/resnet-analyze" "$a" "${ckpts[@]}" "${extra[@]}" "${data_args[@]}" --out "$dir" \
     >"$out/analysis-$a.log" 2>&1) && return 0
  echo "depth_sweep.sh: resnet-analyze $a failed (see $out/analysis-$a.log); the report goes without it" >&2
  return 1
}

# The arguments a child (a parallel job, a Slurm task or the summary job) needs to see this sweep.
set_common() {
  common=(--bin "$bin" --recipe "$recipe" --out "$out" --depths "$depths")
  [ -z "$seeds_opt" ] || common+=(--seeds "$seeds_opt")
  common+=("${data_args[@]}" "${sets[@]}")
  [ $analyze = 0 ] || common+=(--analyze)
}
set_common

if [ $summary_only = 1 ]; then mkdir -p "$out"; summarize; exit; fi

# ---- Slurm: one job array for the runs, one dependent job for the summary ------------------
if [ $slurm_given = 1 ]; then
  # Absolute paths: the jobs run on other hosts and from other folders.
  abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
  out=$(abs "$out") bin=$(abs "$bin") recipe=$(abs "$recipe")
  [ ${#data_args[@]} = 0 ] || data_args=(--data-dir "$(abs "${data_args[1]}")")
  set_common
  todo=()
  for r in "${runs[@]}"; do up_to_date "$(run_dir "$r")" || todo+=("$r"); done
  read -ra sbatch_args <<<"$slurm"
  array_script="#!/bin/bash
#SBATCH --job-name=depth_sweep
#SBATCH --array=0-$(( ${#todo[@]} - 1 ))
#SBATCH --output=$out/slurm/%A_%a.out
#SBATCH --open-mode=append
#SBATCH --requeue
# One task per unfinished (kind, depth, seed) of scripts/depth_sweep.sh; a task that finds its run
# folder resumes it, so a preempted or requeued task continues from its last checkpoint.
runs=(${todo[*]})
: \"\${SLURM_ARRAY_TASK_ID:?is not set: submit this script with sbatch --array}\"
exec bash $(printf '%q ' "$self" "${common[@]}")--run-one \"\${runs[\$SLURM_ARRAY_TASK_ID]}\""
  summary_script="#!/bin/bash
#SBATCH --job-name=depth_sweep-summary
#SBATCH --output=$out/slurm/summary_%j.out
# The tables, plots and report.html of the sweep, once the array has ended (whatever its outcome).
exec bash $(printf '%q ' "$self" "${common[@]}")--summary-only"
  if [ $dry_run = 1 ]; then
    if [ ${#todo[@]} -gt 0 ]; then
      echo "# sbatch --parsable ${sbatch_args[*]} $out/slurm/array.sbatch"
      echo "$array_script"
      echo
      echo "# sbatch --parsable ${sbatch_args[*]} --dependency=afterany:<array job id> $out/slurm/summary.sbatch"
    else
      echo "# every run is finished; only the summary job:"
      echo "# sbatch --parsable ${sbatch_args[*]} $out/slurm/summary.sbatch"
    fi
    echo "$summary_script"
    exit 0
  fi
  check_recipe "${todo[@]}"  # here, not in K failed tasks
  no_link "$out/slurm"
  mkdir -p "$out/slurm"
  rm -f "$(stop_file)"  # a new submission: whatever stopped the last one is to be tried again
  printf '%s\n' "$array_script" | write_new "$out/slurm/array.sbatch"
  printf '%s\n' "$summary_script" | write_new "$out/slurm/summary.sbatch"
  dep=()
  if [ ${#todo[@]} -gt 0 ]; then
    array_id=$(sbatch --parsable "${sbatch_args[@]}" "$out/slurm/array.sbatch") ||
      { echo "depth_sweep.sh: sbatch refused the job array (see above)" >&2; exit 1; }
    array_id=${array_id%%;*}
    echo "submitted job array $array_id: ${#todo[@]} runs (${todo[*]})"
    dep=(--dependency="afterany:$array_id")
  fi
  summary_id=$(sbatch --parsable "${sbatch_args[@]}" "${dep[@]}" "$out/slurm/summary.sbatch") ||
    { echo "depth_sweep.sh: sbatch refused the summary job (see above)" >&2; exit 1; }
  echo "submitted summary job ${summary_id%%;*}${dep:+ (after $array_id)}; logs in $out/slurm/"
  exit 0
fi

# ---- on this host: GNU parallel runs the unfinished runs, --jobs at a time -----------------
for r in "${runs[@]}"; do no_link "$(run_dir "$r")"; done
todo=()
for r in "${runs[@]}"; do
  if up_to_date "$(run_dir "$r")"; then echo "skip   $(run_dir "$r") (finished)"; else todo+=("$r"); fi
done
rm -f "$(stop_file)"  # what stopped the last sweep is to be tried again
if [ ${#todo[@]} -gt 0 ]; then
  check_recipe "${todo[@]}"  # here, once, not in every job
  mkdir -p "$out"
  child=("${common[@]}" --run-parent $$)
  if [ -n "$devices_opt" ]; then
    child+=(--devices "$devices_opt")
  elif [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    child+=(--devices "$CUDA_VISIBLE_DEVICES")
  elif command -v nvidia-smi >/dev/null && gpus=$(nvidia-smi -L 2>/dev/null | sed -n 's/^GPU \([0-9]*\):.*/\1/p' | paste -sd,) &&
       [ -n "$gpus" ]; then
    child+=(--devices "$gpus")
  elif [ "$jobs" -gt 1 ]; then
    child+=(--run-threads "$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))")
  fi
  # parallel starts each job in its own process group, so it relays Ctrl-C itself: SIGINT to every
  # running resnet-train (which finishes its step, checkpoints and exits 130), no new job, and it
  # waits up to 10 minutes for them before SIGKILL (its default TERM..KILL within 0.4 s would kill
  # a run mid-step). A SIGINT or SIGTERM to this script alone is passed on the same way, and so is
  # a job's SIGUSR1 (stop_sweep: a run failed before training).
  interrupted=0 stopping=0 pp=""
  trap 'stopping=1; [ -z "$pp" ] || kill -INT $pp 2>/dev/null' USR1  # before any job can send it
  set +e
  # --ungroup: the jobs write straight to our output (parallel stops relaying buffered output once
  # it is interrupted, which would swallow each run's "interrupted ... resume with" lines).
  [ "$jobs" = 1 ] || child+=(--run-tag)
  printf '%s\n' "${todo[@]}" |
    parallel --jobs "$jobs" --ungroup --quote --termseq INT,600000,KILL,25 \
      bash "$self" "${child[@]}" --run-one '{}' '{%}' &
  pp=$!
  [ $stopping = 0 ] || kill -INT $pp 2>/dev/null
  trap 'interrupted=1; kill -INT $pp 2>/dev/null' INT TERM
  while true; do
    wait $pp; rc=$?
    kill -0 $pp 2>/dev/null || break  # wait returned for a trapped signal: keep waiting for parallel
  done
  trap - INT TERM
  trap ':' USR1
  set -e
  stopped || exit  # its reason, and 2 or 1
  if [ $interrupted = 1 ]; then
    echo "depth_sweep.sh: interrupted; the runs stopped at a checkpoint: run the same command again to resume them" >&2
    exit 130
  fi
  [ $rc = 0 ] || echo "depth_sweep.sh: $rc run(s) failed (their train.log says why)" >&2
fi
summarize || exit
