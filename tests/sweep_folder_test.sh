#!/usr/bin/env bash
# Sweep folders are opened, not trusted (docs/safety.md): scripts/sweep_report.py reads run folders
# whose files are deep or duplicated JSON, symlinks out of the sweep or FIFOs, and writes into an
# --out folder with symlinks planted under its outputs' names; scripts/depth_sweep.sh meets a run
# folder that is a symlink. Every crafted file is refused with one line naming it (the run is
# "unreadable"), nothing hangs, no Python traceback, and nothing outside the sweep changes.
#   sweep_folder_test.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src=${1:?SOURCE_DIR}
bin=${2:?BIN_DIR}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$tmp/outside/folder"
for v in victim victim2 victim3; do echo "precious $v" >"$tmp/outside/$v"; done
touch -d '2001-01-01' "$tmp/outside"/* "$tmp/outside"
outside_state() { (cd "$tmp/outside" && find . -printf '%p %s %T@\n' | sort && cat victim victim2 victim3); }
before=$(outside_state)

# Run folders: one good run with metrics, and one crafted file each in the others.
good_run() {
  mkdir -p "$1"
  echo '{"runtime": {"seed": 0}, "train": {"iterations": 1, "batch_size": 1}}' >"$1/config.json"
  echo '{"parameters": 1, "steps": 1, "final_test_error": 0.5}' >"$1/summary.json"
  printf 'step,epoch,lr,train_loss,train_error,test_loss,test_error\n1,1,0.1,1,0.5,1,0.5\n' >"$1/metrics.csv"
}
r=$tmp/runs
for x in good deep dup link fifo; do good_run "$r/$x"; done
"$py" -c 'import sys; sys.stdout.write("[" * 100000 + "]" * 100000)' >"$r/deep/config.json"
echo '{"runtime": {"seed": 0}, "runtime": {"seed": 1}}' >"$r/dup/config.json"
ln -sf "$tmp/outside/victim" "$r/link/summary.json"
rm "$r/fifo/metrics.csv" && mkfifo "$r/fifo/metrics.csv"
# The output folder, with a symlink out of it under the name of each kind of output.
out=$tmp/out
mkdir -p "$out"
ln -s "$tmp/outside/victim" "$out/summary.md"
ln -s "$tmp/outside/victim2" "$out/summary.csv.tmp"
ln -s "$tmp/outside/victim3" "$out/test_error.png"
# A stand-in gnuplot that, like gnuplot, writes the picture its script names (following symlinks).
mkdir -p "$tmp/gp"
printf '#!/bin/bash\nout=$(sed -n "s/^set output '"'"'\\(.*\\)'"'"'$/\\1/p" "$1")\necho png >>"$out"\n' >"$tmp/gp/gnuplot"
chmod +x "$tmp/gp/gnuplot"
report() {
  PATH="$tmp/gp:$PATH" timeout 60 "$py" "$src/scripts/sweep_report.py" --out "$out" --run "resnet:8:0:$r/good" \
    --run "resnet:8:1:$r/deep" --run "resnet:8:2:$r/dup" --run "resnet:8:3:$r/link" --run "resnet:8:4:$r/fifo" \
    >"$tmp/stdout" 2>"$tmp/stderr"
}
report
rc=$?
[ $rc != 124 ] || fail "sweep_report.py hung"
[ $rc = 3 ] || { cat "$tmp/stderr"; fail "sweep_report.py: exit $rc, not 3 (unreadable runs)"; }
! grep -q Traceback "$tmp/stderr" || { cat "$tmp/stderr"; fail "a Python traceback"; }
expect_line() {
  grep -qxF -- "$1" "$tmp/stderr" || { cat "$tmp/stderr"; fail "no line '$1'"; }
  echo "ok   $1"
}
expect_line "sweep_report.py: $r/deep: config.json: JSON nested deeper than 64 levels; left out of the statistics"
expect_line "sweep_report.py: $r/dup: config.json: key \"runtime\" appears twice in one object; left out of the statistics"
expect_line "sweep_report.py: $r/link: summary.json: a symlink (refused: nothing in a sweep folder is followed out of it); left out of the statistics"
expect_line "sweep_report.py: $r/fifo: metrics.csv: not a regular file; left out of the statistics"
[ "$(wc -l <"$tmp/stderr")" = 4 ] || { cat "$tmp/stderr"; fail "more than one line per unreadable run"; }
for f in summary.md summary.csv test_error.png; do
  [ -f "$out/$f" ] && [ ! -L "$out/$f" ] || fail "$out/$f is not a regular file of the sweep's"
done
[ ! -e "$out/summary.csv.tmp" ] || fail "a temporary was left"
[ "$(outside_state)" = "$before" ] || fail "sweep_report.py changed files outside the sweep"
echo "ok   sweep_report.py wrote its outputs new, through none of the planted symlinks"
# curves/ as a symlink out of the sweep: refused, one line, exit 1.
rm -rf "$out/curves" && ln -s "$tmp/outside/folder" "$out/curves"
report
rc=$?
[ $rc = 1 ] || fail "curves symlink: exit $rc, not 1"
grep -qF "$out/curves: is not a folder of the sweep's own" "$tmp/stderr" || { cat "$tmp/stderr"; fail "curves symlink"; }
[ -z "$(ls -A "$tmp/outside/folder")" ] && [ "$(outside_state)" = "$before" ] || fail "wrote through curves/"
echo "ok   curves/ as a symlink is refused: $(tail -n 1 "$tmp/stderr")"

# depth_sweep.sh: a run folder that is a symlink out of the sweep is refused before anything runs.
"$py" "$src/tests/tools/write_synthetic_cifar.py" "$tmp/data" 8 20 || fail "synthetic data"
mkdir -p "$tmp/sweep"
ln -s "$tmp/outside/folder" "$tmp/sweep/resnet-8-s0"
timeout 120 bash "$src/scripts/depth_sweep.sh" --quick --depths 8 --seeds 0 --out "$tmp/sweep" --bin "$bin" \
  --data-dir "$tmp/data" >"$tmp/stdout" 2>"$tmp/stderr"
rc=$?
[ $rc = 2 ] || { cat "$tmp/stdout" "$tmp/stderr"; fail "depth_sweep.sh: exit $rc, not 2"; }
[ "$(wc -l <"$tmp/stderr")" = 1 ] &&
  grep -qxF "depth_sweep.sh: $tmp/sweep/resnet-8-s0: is a symlink (refused: nothing in a sweep folder is followed out of it)" \
    "$tmp/stderr" || { cat "$tmp/stderr"; fail "depth_sweep.sh's message"; }
[ -z "$(ls -A "$tmp/outside/folder")" ] && [ "$(outside_state)" = "$before" ] || fail "depth_sweep.sh wrote outside"
echo "ok   depth_sweep.sh refuses a run folder that is a symlink: $(cat "$tmp/stderr")"
echo "sweep_folder_test: passed"
