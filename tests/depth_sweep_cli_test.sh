#!/usr/bin/env bash
# scripts/depth_sweep.sh's command line: every mistake is one line on stderr and exit 2, with
# nothing written; --slurm --dry-run prints job scripts that bash accepts and submits nothing;
# --jobs on a machine with GPUs gives each running job its own CUDA_VISIBLE_DEVICES (checked without
# a GPU: a stand-in nvidia-smi lists two, a stand-in resnet-train records the device of each run);
# a run that fails before training stops the sweep; scripts/sweep_report.py on runs without metrics
# says so in one line per run and calls no gnuplot.
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
# No Slurm client on this host: a PATH with every command of ours but sbatch.
mkdir "$tmp/path"
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  for c in "$d"/*; do
    [ -x "$c" ] && [ "${c##*/}" != sbatch ] && [ ! -e "$tmp/path/${c##*/}" ] && ln -s "$c" "$tmp/path/${c##*/}"
  done
done
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

# ---- --jobs with GPUs ------------------------------------------------------------------------
mkdir -p "$tmp/fake"
cat >"$tmp/fake/nvidia-smi" <<'END'
#!/bin/bash
printf 'GPU 0: Stand-in GPU (UUID: GPU-0000)\nGPU 1: Stand-in GPU (UUID: GPU-0001)\n'
END
# A run: holds its GPU (mkdir fails if another run holds it), records it, leaves a finished run.
# EARLY_FAIL=NAME fails before training as resnet-train can (exit 1, no "starting run" in
# train.log) once another run is training; FAIL_RUN=NAME fails after it started. A run trains for
# RUN_SECONDS (0.4); SIGINT then stops it as resnet-train's checkpoint does (logged, exit 130).
cat >"$tmp/fake/resnet-train" <<END
#!/bin/bash
out=""
while [ \$# -gt 0 ]; do case \$1 in --dry-run) exit 0 ;; --out) out=\$2; shift ;; esac; shift; done
name=\$(basename "\$out")
echo "call \$name" >>"$tmp/fake/log"
if [ "\$name" = "\${EARLY_FAIL:-}" ]; then
  for _ in \$(seq 200); do grep -q '^training' "$tmp/fake/log" && break; sleep 0.05; done
  echo "\$EARLY_FAIL: out of memory at start" >&2; exit 1
fi
mkdir -p "\$out"
echo "[info] starting run '\$(basename "\$out")' in \$out" >>"\$out/train.log"
[ "\$(basename "\$out")" != "\${FAIL_RUN:-}" ] || { echo "\$FAIL_RUN: diverged" >&2; exit 1; }
gpu=\${CUDA_VISIBLE_DEVICES:-none}
if mkdir "$tmp/fake/busy-\$gpu" 2>/dev/null; then held=1; else held=0; echo "shared \$gpu" >>"$tmp/fake/log"; fi
echo "run \$gpu \$(ls -d "$tmp"/fake/busy-* | wc -l) \$(basename "\$out") \$*" >>"$tmp/fake/log"
mkdir -p "\$out"
trap 'echo "interrupted \$name" >>"$tmp/fake/log"; exit 130' INT
echo "training \$name" >>"$tmp/fake/log"
sleep \${RUN_SECONDS:-0.4}
echo '{"runtime": {"seed": 0, "threads": 0}, "train": {"iterations": 1, "batch_size": 1}}' >"\$out/config.json"
printf 'step,epoch,lr,train_loss,train_error,test_loss,test_error\n1,1,0.1,1,0.5,1,0.5\n' >"\$out/metrics.csv"
echo '{"parameters": 1, "steps": 1, "final_test_error": 0.5}' >"\$out/summary.json"
[ \$held = 0 ] || rmdir "$tmp/fake/busy-\$gpu"
END
chmod +x "$tmp/fake/nvidia-smi" "$tmp/fake/resnet-train"
# gpu_sweep NAME CUDA_VISIBLE_DEVICES [ARGS...]: a 2-seed sweep of depth 8 with --jobs 2 on the
# stand-ins (CUDA_VISIBLE_DEVICES unset when empty); prints the GPUs its runs got.
gpu_sweep() {
  local name=$1 cvd=$2; shift 2
  local env_args=(-u CUDA_VISIBLE_DEVICES)
  [ -z "$cvd" ] || env_args=(CUDA_VISIBLE_DEVICES="$cvd")
  rm -f "$tmp/fake/log"
  env "${env_args[@]}" PATH="$tmp/fake:$PATH" bash "$sweep" --bin "$tmp/fake" --out "$tmp/$name" \
    --depths 8 --seeds 0,1 --jobs 2 "$@" >"$tmp/$name.log" 2>&1 || { echo "     $name: exit $?" >&2; tail -n 5 "$tmp/$name.log" >&2; }
  awk '$1 == "run" {print $2}' "$tmp/fake/log" | sort -u | paste -sd,
}
ok=1
used=$(gpu_sweep gpus "")
[ "$used" = 0,1 ] || { echo "     nvidia-smi's GPUs 0,1: the runs used '$used'"; ok=0; }
! grep -q '^shared' "$tmp/fake/log" || { echo "     two runs shared a GPU: $(grep '^shared' "$tmp/fake/log")"; ok=0; }
awk '$1 == "run" && $3 == 2 {found = 1} END {exit !found}' "$tmp/fake/log" || { echo "     never two runs at once"; ok=0; }
! grep -q 'runtime.threads' "$tmp/fake/log" || { echo "     a GPU run got runtime.threads"; ok=0; }
[ "$(grep -c '^run' "$tmp/fake/log")" = 4 ] || { echo "     not 4 runs"; ok=0; }
grep -q "^\[plain-8-s0\] train  $tmp/gpus/plain-8-s0 on GPU [01]$" "$tmp/gpus.log" || { echo "     no tagged 'on GPU' line"; ok=0; }
used=$(gpu_sweep dev5 "" --devices 5)
[ "$used" = 5 ] || { echo "     --devices 5: the runs used '$used'"; ok=0; }
used=$(gpu_sweep cvd 3,4)
[ "$used" = 3,4 ] || { echo "     CUDA_VISIBLE_DEVICES=3,4: the runs used '$used'"; ok=0; }
# A run that fails costs only itself: the others finish, the summary lists it, exit 1.
FAIL_RUN=resnet-8-s1 gpu_sweep failing "" >/dev/null 2>&1
okf=1
for r in plain-8-s0 plain-8-s1 resnet-8-s0; do [ -f "$tmp/failing/$r/summary.json" ] || okf=0; done
grep -q "^Missing .*$tmp/failing/resnet-8-s1" "$tmp/failing/summary.md" || okf=0
grep -q '^depth_sweep.sh: 1 run(s) failed' "$tmp/failing.log" || okf=0
FAIL_RUN=resnet-8-s1 env -u CUDA_VISIBLE_DEVICES PATH="$tmp/fake:$PATH" bash "$sweep" --bin "$tmp/fake" \
  --out "$tmp/failing" --depths 8 --seeds 0,1 --jobs 2 >/dev/null 2>&1
[ $? = 1 ] || okf=0
if [ $okf = 1 ]; then echo "ok   a failed run: the others finish, summary.md lists it as missing, exit 1"; else
  echo "FAIL a failed run"; cat "$tmp/failing.log"; fail=1; fi
# A run that fails before training stops the sweep: the run beside it stops as on Ctrl-C, no run
# after it starts, its reason is the last line, exit 1 (resnet-train's status), no summary.
rm -f "$tmp/fake/log"
EARLY_FAIL=plain-8-s0 RUN_SECONDS=20 env -u CUDA_VISIBLE_DEVICES PATH="$tmp/fake:$PATH" bash "$sweep" --bin "$tmp/fake" \
  --out "$tmp/early" --depths 8 --seeds 0,1 --jobs 2 >"$tmp/early.log" 2>&1
rc=$?
oke=1
[ $rc = 1 ] || { echo "     exit $rc, not 1"; oke=0; }
calls=$(grep -c '^call' "$tmp/fake/log")
[ "$calls" = 2 ] || { echo "     $calls runs started, not the 2 of the first slots"; oke=0; }
grep -q '^interrupted plain-8-s1$' "$tmp/fake/log" || { echo "     plain-8-s1 was not interrupted"; oke=0; }
tail -n 1 "$tmp/early.log" | grep -q "^depth_sweep.sh: stopped: plain-8-s0 (started) failed before training: plain-8-s0: out of memory at start; no summary written" ||
  { echo "     last line: $(tail -n 1 "$tmp/early.log")"; oke=0; }
[ ! -e "$tmp/early/summary.md" ] || { echo "     a summary was written"; oke=0; }
if [ $oke = 1 ]; then echo "ok   a run that fails before training stops the sweep (the run beside it interrupted, 2 of 4 started)"; else
  echo "FAIL a run that fails before training"; cat "$tmp/early.log"; fail=1; fi
if [ $ok = 1 ]; then echo "ok   --jobs 2 gives each running job its own GPU (nvidia-smi -L, --devices, CUDA_VISIBLE_DEVICES)"; else
  echo "FAIL --jobs with GPUs"; cat "$tmp/gpus.log"; fail=1; fi

# ---- sweep_report.py: runs without metrics --------------------------------------------------
# a: finished (summary.json) but no metrics.csv; b: never started. A stand-in gnuplot records
# each call and fails.
rep=$tmp/report
mkdir -p "$rep/a" "$rep/out" "$rep/gp"
echo '{"runtime": {"seed": 0}, "train": {"iterations": 1, "batch_size": 1}}' >"$rep/a/config.json"
echo '{"parameters": 1, "steps": 1, "final_test_error": 0.5}' >"$rep/a/summary.json"
printf '#!/bin/bash\necho "$*" >>"%s/calls"; echo "gnuplot: stand-in failure" >&2; exit 1\n' "$rep/gp" >"$rep/gp/gnuplot"
chmod +x "$rep/gp/gnuplot"
report() { PATH="$rep/gp:$PATH" /usr/bin/python3 "$(dirname "$sweep")/sweep_report.py" --out "$rep/out" \
             --run "plain:8:0:$rep/a" --run "resnet:8:0:$rep/b" >/dev/null 2>"$rep/err"; }
report
rc=$?
ok=1
[ $rc = 3 ] || { echo "     exit $rc, not 3 (runs missing)"; ok=0; }
[ "$(cat "$rep/err")" = "sweep_report.py: $rep/a: metrics.csv: No such file or directory; left out of the statistics" ] ||
  { echo "     stderr:"; cat "$rep/err"; ok=0; }
[ ! -e "$rep/gp/calls" ] || { echo "     gnuplot was called on no data"; ok=0; }
grep -q "^Unreadable (left out of the statistics): $rep/a (metrics.csv: No such file or directory)$" "$rep/out/summary.md" &&
  grep -q "^Missing (.*): $rep/b$" "$rep/out/summary.md" && grep -q "^No plots: " "$rep/out/summary.md" &&
  [ -s "$rep/out/report.html" ] && [ ! -e "$rep/out/test_error.png" ] || { echo "     summary.md:"; cat "$rep/out/summary.md"; ok=0; }
# With metrics, a failing gnuplot is one line too, and exit 1.
printf 'step,epoch,lr,train_loss,train_error,test_loss,test_error\n1,1,0.1,1,0.5,1,0.5\n' >"$rep/a/metrics.csv"
report
rc=$?
[ $rc = 1 ] || { echo "     with metrics and a failing gnuplot: exit $rc, not 1"; ok=0; }
[ "$(wc -l <"$rep/err")" = 1 ] && grep -q "^sweep_report.py: gnuplot failed on .*(exit 1): gnuplot: stand-in failure$" "$rep/err" ||
  { echo "     stderr:"; cat "$rep/err"; ok=0; }
if [ $ok = 1 ]; then echo "ok   sweep_report.py: runs without metrics are one line each, no gnuplot; a failing gnuplot is one line"; else
  echo "FAIL sweep_report.py on runs without metrics"; fail=1; fi
exit $fail
