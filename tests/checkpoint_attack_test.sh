#!/usr/bin/env bash
# The attack on version-1 checkpoints, as a user would meet it: a real run's checkpoint whose
# TorchScript class source gives the module a __setstate__ that writes a file (made and proven
# live with Debian's python3-torch by tests/interop/make_attack_checkpoint.py). Fed to every
# tool that reads checkpoints, as a file and inside a run folder:
#   resnet-eval --checkpoint, resnet-train --resume (and model.init_from), resnet-export,
#   resnet-analyze
# each must exit 2 with one line on stderr naming the file, write nothing, and the attacker's
# file must never appear. Each command (but model.init_from, which takes weight files) first runs
# on the untampered run and must succeed there, so a refusal cannot come from a wrong command line.
#   checkpoint_attack_test.sh BIN_DIR SOURCE_DIR
set -uo pipefail
bin=${1:?BIN_DIR}
src=${2:?SOURCE_DIR}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$py" -c 'import torch' 2>/dev/null || fail "python3-torch is missing (scripts/install_deps.sh installs it)"
"$py" "$src/tests/tools/write_synthetic_cifar.py" "$tmp/data" 16 40 || fail "synthetic data"
cp -r "$src/tests/fixtures/v1_run" "$tmp/good"
marker=$tmp/pwned.pt
"$py" "$src/tests/interop/make_attack_checkpoint.py" "$tmp/good/checkpoints/last.ckpt" "$tmp/attack.ckpt" "$marker" \
  >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; fail "could not make a live attack"; }
grep -q "(live)" "$tmp/make.log" || fail "the attack was not shown live"

# $1: label; $2: the path that must be named; the rest: the command (GOOD/ATTACK placeholders
# stand for the checkpoint or run folder: the untampered one, then the attacked one).
checked=0
check() {
  local label=$1 named=$2
  shift 2
  local good=() bad=()
  for a in "$@"; do good+=("${a//@/$tmp/good_$label}"); bad+=("${a//@/$tmp/bad_$label}"); done
  # Fresh copies per command: a resume writes into its folder.
  cp -r "$src/tests/fixtures/v1_run" "$tmp/good_$label"
  cp -r "$src/tests/fixtures/v1_run" "$tmp/bad_$label"
  cp "$tmp/attack.ckpt" "$tmp/bad_$label/checkpoints/last.ckpt"
  if [ "${CONTROL:-1}" = 1 ]; then
    "${good[@]}" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "$label: the command fails on the untampered run"; }
  fi
  rm -rf "$tmp/out_$label"
  "${bad[@]}" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$?
  [ "$rc" = 2 ] || { cat "$tmp/stdout" "$tmp/stderr"; fail "$label: exit $rc, not 2"; }
  [ "$(wc -l <"$tmp/stderr")" = 1 ] || { cat "$tmp/stderr"; fail "$label: stderr is not one line"; }
  grep -qF "${named//@/$tmp/bad_$label}" "$tmp/stderr" || { cat "$tmp/stderr"; fail "$label: the error does not name ${named//@/$tmp/bad_$label}"; }
  [ ! -e "$marker" ] || fail "$label: the checkpoint's code ran: $marker was written"
  [ ! -e "$tmp/out_$label" ] || fail "$label: wrote $tmp/out_$label"
  echo "ok  $label: $(cat "$tmp/stderr")"
  checked=$((checked + 1))
}

ckpt=@/checkpoints/last.ckpt
d=(--data-dir "$tmp/data")
check eval_file "$ckpt" "$bin/resnet-eval" --checkpoint "$ckpt" "${d[@]}"
check eval_run "$ckpt" "$bin/resnet-eval" --checkpoint @ "${d[@]}"
check resume_run "$ckpt" "$bin/resnet-train" --resume @ "${d[@]}" --set train.iterations=7
# model.init_from takes weight files, not checkpoints: no untampered control, the refusal is the
# restricted unpickler's (a module object is not a state_dict).
CONTROL=0 check init_from "$ckpt" "$bin/resnet-train" --config "$src/tests/fixtures/v1_config.json" "${d[@]}" \
  --set "model.init_from=\"$ckpt\"" --out "$tmp/out_init_from"
check export_file "$ckpt" "$bin/resnet-export" --checkpoint "$ckpt" --out "$tmp/out_export_file" --format pt
check export_run "$ckpt" "$bin/resnet-export" --checkpoint @ --out "$tmp/out_export_run" --format pt
check analyze_file "$ckpt" "$bin/resnet-analyze" responses --checkpoint "$ckpt" "${d[@]}" --images 16 --out "$tmp/out_analyze_file"
check analyze_run "$ckpt" "$bin/resnet-analyze" responses --checkpoint @ "${d[@]}" --images 16 --out "$tmp/out_analyze_run"
echo "checkpoint_attack_test: $checked commands refused the attack, nothing written"
