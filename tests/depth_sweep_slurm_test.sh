#!/usr/bin/env bash
# scripts/depth_sweep.sh --slurm against a real one-node Slurm cluster (Debian's slurm-wlm, munge):
#   depth_sweep_slurm_test.sh SWEEP_SCRIPT BIN_DIR
# Starts munged, slurmctld and slurmd on localhost with every file (key, socket, config, state,
# logs) in a temp folder and ports of its own, so nothing of the host's is used or changed;
# submits a 2-task job array (plain-8 and resnet-8, seed 0; plain-8 already interrupted at a
# checkpoint, as a preempted task leaves it) and its summary job, and checks that the task resumed
# plain-8, both runs finished, and the summary job wrote the report. Then the same sweep without
# CIFAR-10, one task at a time: the first task's failure cancels the other before it starts, and
# the summary job ends with that task's reason. The daemons are stopped by pid
# when the test ends, whatever happens. Exit 77 (CTest: skipped) only when it cannot be tried here:
# not root, or slurm-wlm/munge not installed. Installed daemons that do not come up are a failure
# (exit 1) that prints the last lines of their logs.
set -uo pipefail
sweep=$1
real_bin=$2
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "slurmd and munged need root here (SlurmdUser=root)"
for c in munged munge unmunge slurmctld slurmd sbatch squeue sinfo scancel; do
  command -v $c >/dev/null || [ -x /usr/sbin/$c ] || skip "$c not found (scripts/install_deps.sh installs slurm-wlm and munge)"
done
py=/usr/bin/python3
[ -x $py ] || py=$(command -v python3)

tmp=$(mktemp -d)
chmod 755 "$tmp"  # munged checks that its socket's folders are reachable by all
pids=()
slurm_up=0
# broken WHAT: the daemons are installed but did not come up: a failure, with their logs.
broken() {
  echo "FAIL $*"
  local f
  for f in "$tmp/munged.out" "$tmp/munge/munged.log" "$tmp/slurmctld.out" "$tmp/slurmctld.log" \
           "$tmp/slurmd.out" "$tmp/slurmd.log"; do
    [ -s "$f" ] && { echo "---- ${f#$tmp/} (last lines)"; tail -n 15 "$f"; }
  done
  exit 1
}
cleanup() {
  # Jobs first (so no training outlives its slurmd), then the daemons, newest first, by pid.
  if [ $slurm_up = 1 ]; then  # our cluster's jobs only: SLURM_CONF names its config
    scancel --quiet --user=root 2>/dev/null
    for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- munge: a key and a socket of our own ---------------------------------------------------
mkdir -p "$tmp/munge-key" "$tmp/munge" "$tmp/state" "$tmp/spool"
chmod 700 "$tmp/munge-key"
head -c 1024 /dev/urandom >"$tmp/munge-key/munge.key"
chmod 400 "$tmp/munge-key/munge.key"
sock=$tmp/munge/munge.socket
$(command -v munged || echo /usr/sbin/munged) -F --force --socket="$sock" --key-file="$tmp/munge-key/munge.key" \
  --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/munge/munged.log" --seed-file="$tmp/munge/seed" \
  >"$tmp/munged.out" 2>&1 &
pids+=($!)
# alive: every daemon started so far still runs (one that exited fails the test at once, not after the wait).
alive() {
  local i names=(munged slurmctld slurmd)
  for i in "${!pids[@]}"; do kill -0 "${pids[$i]}" 2>/dev/null || broken "${names[$i]} exited at start"; done
}
for _ in $(seq 50); do munge -S "$sock" -n 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1 && break; alive; sleep 0.1; done
munge -S "$sock" -n | unmunge -S "$sock" >/dev/null 2>&1 || broken "munged did not start (munge -n | unmunge fails)"

# ---- slurm.conf: this host as the one node, two free ports ------------------------------------
read -r ctld_port d_port < <($py -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
host=$(hostname -s)
mem=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
export SLURM_CONF=$tmp/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=sweeptest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
$(command -v slurmctld || echo /usr/sbin/slurmctld) -D -i >"$tmp/slurmctld.out" 2>&1 &
pids+=($!)
slurm_up=1
sleep 1
$(command -v slurmd || echo /usr/sbin/slurmd) -D >"$tmp/slurmd.out" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 150); do
  state=$(sinfo -h -o %t 2>/dev/null)
  [ "$state" = idle ] && break
  alive
  sleep 0.2
done
[ "$state" = idle ] || broken "the Slurm node did not come up within 30 s (sinfo state '$state')"
echo "one-node Slurm up: $host, ports $ctld_port/$d_port"

# ---- the sweep ----------------------------------------------------------------------------
fail=0
check() {
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
$py "$(dirname "$0")/tools/write_synthetic_cifar.py" "$tmp/data" 8 40
cat >"$tmp/recipe.json" <<'EOF'
{"train": {"batch_size": 20, "iterations": 20, "eval_every": 10, "checkpoint_every": 2, "log_every": 5,
           "lr_schedule": {"milestones": [15]}}, "runtime": {"threads": 1}}
EOF
out=$tmp/sweep
args=(--depths 8 --seeds 0 --recipe "$tmp/recipe.json" --data-dir "$tmp/data" --bin "$real_bin" --out "$out")
# plain-8 as a preempted task leaves it: started by the sweep's own command, stopped by SIGINT
# after a checkpoint.
mkdir -p "$out"
set -m
"$real_bin/resnet-train" --config "$tmp/recipe.json" --set model.depth=8 --set model.residual=false \
  --set runtime.seed=0 --set 'name="plain-8-s0"' --data-dir "$tmp/data" --out "$out/plain-8-s0" \
  --no-progress >"$tmp/pre.log" 2>&1 &
pre=$!
set +m
for _ in $(seq 1500); do [ -f "$out/plain-8-s0/checkpoints/last.ckpt" ] && break; sleep 0.02; done
kill -INT "$pre"
wait "$pre"
check "plain-8-s0 was interrupted before submitting" [ $? = 130 ]

bash "$sweep" "${args[@]}" --slurm "--time=10" >"$tmp/submit.log" 2>&1
rc=$?
cat "$tmp/submit.log"
check "depth_sweep.sh --slurm exits 0" [ $rc = 0 ]
array_id=$(sed -n 's/^submitted job array \([0-9]*\): 2 runs.*/\1/p' "$tmp/submit.log")
summary_id=$(sed -n 's/^submitted summary job \([0-9]*\) (after .*/\1/p' "$tmp/submit.log")
check "a 2-task array and a dependent summary job were submitted" [ -n "$array_id" -a -n "$summary_id" ]
for _ in $(seq 900); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
check "the queue drained within 3 minutes" [ -z "$(squeue -h)" ]
check "task 0 resumed plain-8-s0" grep -q "^resume $out/plain-8-s0" "$out/slurm/${array_id}_0.out"
check "task 1 trained resnet-8-s0" grep -q "^train  $out/resnet-8-s0" "$out/slurm/${array_id}_1.out"
for r in plain-8-s0 resnet-8-s0; do
  check "$r finished its 20 steps" grep -q '"steps": 20' "$out/$r/summary.json"
done
check "the summary job wrote the report" grep -q "^wrote $out/summary.md" "$out/slurm/summary_${summary_id}.out"
check "summary.md has both nets" bash -c "grep -q '^| plain-8 |' '$out/summary.md' && grep -q '^| resnet-8 |' '$out/summary.md'"
check "report.html and the plots exist" test -s "$out/report.html" -a -s "$out/test_error.png" -a -s "$out/training_error.png"
# Everything finished: a second submission has no array to submit, only the summary job.
bash "$sweep" "${args[@]}" --slurm "--time=10" >"$tmp/submit2.log" 2>&1
check "a finished sweep submits only the summary job" \
  bash -c "! grep -q 'job array' '$tmp/submit2.log' && grep -q '^submitted summary job' '$tmp/submit2.log'"
for _ in $(seq 300); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done

# ---- no CIFAR-10: the first task that fails before training stops the array ----------------
# --cpus-per-task=all of the node's: one task at a time, so the second is still pending when the
# first fails.
mkdir -p "$tmp/nodata"
stop=$tmp/stop
bash "$sweep" --depths 8 --seeds 0 --recipe "$tmp/recipe.json" --data-dir "$tmp/nodata" --bin "$real_bin" \
  --out "$stop" --slurm "--time=10 --cpus-per-task=$(nproc)" >"$tmp/submit3.log" 2>&1
array3=$(sed -n 's/^submitted job array \([0-9]*\): 2 runs.*/\1/p' "$tmp/submit3.log")
summary3=$(sed -n 's/^submitted summary job \([0-9]*\) (after .*/\1/p' "$tmp/submit3.log")
check "the sweep without CIFAR-10 was submitted" [ -n "$array3" -a -n "$summary3" ]
for _ in $(seq 300); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
check "only one of its 2 tasks ran" [ "$(ls "$stop/slurm/${array3}"_*.out 2>/dev/null | wc -l)" = 1 ]
check "the summary job ends with that task's reason" grep -qE \
  "^depth_sweep.sh: stopped: [a-z]+-8-s0 \(started\) failed before training: resnet-train: error: $tmp/nodata/data_batch_1.bin: missing CIFAR-10 file" \
  <(tail -n 1 "$stop/slurm/summary_${summary3}.out" 2>/dev/null)
check "and writes no summary" [ ! -e "$stop/summary.md" ]
if [ $fail != 0 ]; then
  for f in "$out"/slurm/*.out "$stop"/slurm/*.out "$tmp/slurmctld.log" "$tmp/slurmd.log"; do echo "---- $f"; tail -n 15 "$f"; done
fi
exit $fail
