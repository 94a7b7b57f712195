#!/usr/bin/env bash
# scripts/depth_sweep.sh's command line: every mistake is one line on stderr and exit 2, with
# nothing written; --slurm --dry-run prints job scripts that bash accepts and submits nothing.
#   depth_sweep_cli_test.sh SWEEP_SCRIPT BIN_DIR
set -uo pipefail
sweep=$1
bin=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
base=(--bin "$bin" --out "$tmp/out")
runner=(bash)

# expect_usage_error WHAT ARGS...: exit 2, one line on stderr naming the script, no output folder.
expect_usage_error() {
  local what=$1; shift
  "${runner[@]}" "$sweep" "$@" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$? lines
  lines=$(wc -l <"$tmp/stderr")
  if [ $rc = 2 ] && [ "$lines" = 1 ] && grep -q '^depth_sweep.sh: ' "$tmp/stderr" && [ ! -e "$tmp/out" ]; then
    echo "ok   $what: $(cat "$tmp/stderr")"
  else
    echo "FAIL $what: exit $rc, $lines stderr lines, output folder $([ -e "$tmp/out" ] && echo made || echo absent)"
    cat "$tmp/stderr"; fail=1
  fi
  rm -rf "$tmp/out"
}
expect_usage_error "unknown option" "${base[@]}" --sedes 0,1
expect_usage_error "option without its value" "${base[@]}" --seeds
expect_usage_error "seeds not a list" "${base[@]}" --seeds "0 1"
expect_usage_error "depth not a number" "${base[@]}" --depths "20 x"
expect_usage_error "zero jobs" "${base[@]}" --jobs 0
expect_usage_error "devices not a list" "${base[@]}" --devices "0 1"
expect_usage_error "--jobs with --slurm" "${base[@]}" --jobs 2 --slurm "" --dry-run
expect_usage_error "--dry-run without --slurm" "${base[@]}" --dry-run
expect_usage_error "missing binary" --bin "$tmp/nowhere" --out "$tmp/out"
expect_usage_error "missing recipe" "${base[@]}" --recipe "$tmp/nothing.json"
# A bad depth or --set is found by resnet-train --dry-run once, before anything runs.
expect_usage_error "a depth resnet-train rejects" "${base[@]}" --depths "20 21"
expect_usage_error "a --set resnet-train rejects" "${base[@]}" --set train.lr=-1
# No Slurm client on this host: a PATH with only what the script needs before it looks for sbatch.
mkdir "$tmp/path"
for c in dirname basename; do ln -s "$(command -v $c)" "$tmp/path/$c"; done
runner=(env PATH="$tmp/path" "$(command -v bash)")
expect_usage_error "--slurm without sbatch" "${base[@]}" --slurm "--partition=gpu"
runner=(bash)

# --slurm --dry-run: the two job scripts, nothing submitted or written.
bash "$sweep" "${base[@]}" --depths "8 14" --seeds 0,1,2 --slurm "--partition=gpu --gres=gpu:1" --dry-run \
  >"$tmp/dry.txt" 2>"$tmp/dry.err"
rc=$?
awk '/^#!\/bin\/bash/{n++} {print > ("'"$tmp"'/job" n ".sh")}' "$tmp/dry.txt"
ok=1
[ $rc = 0 ] || { echo "     exit $rc: $(cat "$tmp/dry.err")"; ok=0; }
[ ! -e "$tmp/out" ] || { echo "     the dry run made $tmp/out"; ok=0; }
grep -q '^#SBATCH --array=0-11$' "$tmp/job1.sh" || { echo "     no --array=0-11 for 2 depths x 3 seeds x 2 kinds"; ok=0; }
grep -q '^runs=(plain:8:0 plain:8:1 plain:8:2 plain:14:0 .* resnet:14:2)$' "$tmp/job1.sh" || { echo "     wrong run list"; ok=0; }
grep -q -- '--run-one "${runs\[$SLURM_ARRAY_TASK_ID\]}"$' "$tmp/job1.sh" || { echo "     the task does not pick its run"; ok=0; }
grep -q -- '^# sbatch --parsable --partition=gpu --gres=gpu:1 --dependency=afterany:<array job id> ' "$tmp/dry.txt" ||
  { echo "     no afterany dependency for the summary job"; ok=0; }
grep -q -- '--summary-only$' "$tmp/job2.sh" || { echo "     the second script is not the summary"; ok=0; }
for j in job1 job2; do bash -n "$tmp/$j.sh" || { echo "     $j.sh is not valid bash"; ok=0; }; done
if [ $ok = 1 ]; then echo "ok   --slurm --dry-run prints the array and summary scripts"; else
  echo "FAIL --slurm --dry-run"; cat "$tmp/dry.txt"; fail=1; fi
exit $fail
