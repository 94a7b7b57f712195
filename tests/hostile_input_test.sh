#!/usr/bin/env bash
# Crafted files and run folders (each file under 1 MiB: tests/tools/make_hostile_inputs.py) against
# the tools that read them, as an attacker would hand them over (docs/safety.md):
#   - every case ends in the exit code it must (2 for bad input), within a timeout (a FIFO must
#     not hang a tool), under an address-space cap, with peak RSS at most $RSS_ALLOWANCE_MB (250)
#     above the tool's own footprint (resnet-eval refusing a missing file: ~160 MB on Debian's
#     LibTorch, ~460 MB on the pip build, which maps the CUDA libraries);
#   - stderr is one line of at most two terminal lines naming the file (and, where there is one,
#     the key), without control characters;
#   - nothing outside the run folder changes: the symlinks and hard links planted in folders
#     point at files in $tmp/outside, whose bytes and times are compared after every case.
# Each run-folder case plants one kind of entry (symlink out, FIFO, device, folder, hard link, huge
# sparse file) at one path the tools read or write, in a fresh copy of a real run.
#   hostile_input_test.sh BIN_DIR SOURCE_DIR [TABLE.md]
# With TABLE.md, the measurements (case, tool, exit, peak RSS, seconds, message) go there as a
# markdown table (docs/safety.md's table is made this way).
set -uo pipefail
bin=${1:?BIN_DIR}
src=${2:?SOURCE_DIR}
table=${3:-}
py=/usr/bin/python3
as_cap=$((3 << 30))  # bytes of address space: a bomb fails here before it can take the machine
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# A case's failure: fatal, unless KEEP_GOING=1 (then every case runs and each failure is listed).
failures=0
bad() {
  [ -n "${KEEP_GOING:-}" ] || fail "$@"
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
# measure OUT COMMAND...: runs COMMAND, writes "peak_rss_kb seconds" to OUT (the largest
# descendant's peak RSS, as /usr/bin/time -f %M reports it) and exits with COMMAND's status.
measure() {
  "$py" -c 'import resource, subprocess, sys, time
t = time.time()
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, f"{time.time() - t:.2f}", file=f)
sys.exit(rc if rc >= 0 else 128 - rc)' "$@"
}

cfg=$src/tests/fixtures/v1_config.json
"$py" "$src/tests/tools/write_synthetic_cifar.py" "$tmp/data" 16 40 || fail "synthetic data"
d=(--data-dir "$tmp/data")
measure "$tmp/time" "$bin/resnet-eval" --weights "$tmp/missing.pt" --config "$cfg" >/dev/null 2>"$tmp/base.err"
base_rc=$?
read -r base_kb _ <"$tmp/time"
[ "$base_rc" = 2 ] && grep -q "missing.pt" "$tmp/base.err" ||
  fail "footprint: resnet-eval on a missing file: exit $base_rc, $(head -c 300 "$tmp/base.err")"
# The footprint itself is bounded: a tool that takes memory before it reads anything must not
# raise the bound it is held to.
[ "${base_kb:-0}" -gt 0 ] && [ "$base_kb" -le $((600 * 1024)) ] ||
  fail "footprint: resnet-eval on a missing file peaked at $((${base_kb:-0} / 1024)) MB (at most 600 MB)"
rss_limit_mb=$((base_kb / 1024 + ${RSS_ALLOWANCE_MB:-250}))
echo "footprint: resnet-eval refusing a missing file peaks at $((base_kb / 1024)) MB; limit $rss_limit_mb MB"
# A real run to copy and plant things in: checkpoint, metrics, log, TensorBoard events.
"$bin/resnet-train" --config "$cfg" "${d[@]}" --out "$tmp/base" --set train.iterations=3 \
  --set runtime.tensorboard=true --no-progress >"$tmp/base.log" 2>&1 || { cat "$tmp/base.log"; fail "base run"; }
"$bin/resnet-export" --checkpoint "$tmp/base" --out "$tmp/base.safetensors" >/dev/null || fail "export"
"$py" "$src/tests/tools/make_hostile_inputs.py" "$tmp/f" "$tmp/base/checkpoints/last.ckpt" "$tmp/base.safetensors" ||
  fail "crafting the inputs"
f=$tmp/f

# What must never change: files outside every run folder, pointed at by the plants.
mkdir -p "$tmp/outside/folder"
for v in victim victim2 victim3; do echo "precious $v" >"$tmp/outside/$v"; done
touch -d '2001-01-01' "$tmp/outside"/* "$tmp/outside"
outside_state() { (cd "$tmp/outside" && find . -printf '%p %s %T@\n' | sort && cat victim victim2 victim3); }
before=$(outside_state)

[ -z "$table" ] || { echo "| case | tool | exit | peak RSS | time | message |"; echo "|---|---|---|---|---|---|"; } >"$table"
checked=0
# run LABEL RC NEEDLE -- COMMAND...: RC the exit code it must end with; NEEDLE (for RC 2) a text the
# one-line message must hold.
run() {
  local label=$1 want=$2 needle=$3
  shift 4
  measure "$tmp/time" prlimit --as=$as_cap -- timeout 60 "$@" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$?
  local rss_kb secs
  read -r rss_kb secs < <(tail -n 1 "$tmp/time")
  local msg
  msg=$(head -c 2000 "$tmp/stderr")
  [ "$rc" != 124 ] || bad "$label: hung (killed after 60 s)"
  [ "$rc" = "$want" ] || { cat "$tmp/stdout" "$tmp/stderr" | tail -n 20; bad "$label: exit $rc, not $want"; }
  [ "$rss_kb" -le $((rss_limit_mb * 1024)) ] || bad "$label: peak RSS $((rss_kb / 1024)) MB > $rss_limit_mb MB"
  if [ "$want" = 2 ]; then
    [ "$(wc -l <"$tmp/stderr")" = 1 ] || { cat "$tmp/stderr"; bad "$label: stderr is not one line"; }
    [ "$(wc -c <"$tmp/stderr")" -le 640 ] || bad "$label: a message of $(wc -c <"$tmp/stderr") bytes"
    grep -qF -- "$needle" "$tmp/stderr" || bad "$label: the message does not say '$needle': $msg"
  fi
  if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$tmp/stderr" "$tmp/stdout"; then
    bad "$label: control characters in the output"
  fi
  [ "$(outside_state)" = "$before" ] || bad "$label: something outside the run folder changed"
  checked=$((checked + 1))
  echo "ok  $label: exit $rc, $((rss_kb / 1024)) MB, ${secs} s: $msg"
  if [ -n "$table" ]; then
    local tool=${1##*/}
    msg=${msg//|/\\|}
    msg=${msg//$tmp/TMP}
    echo "| $label | $tool | $rc | $((rss_kb / 1024)) MB | $secs s | ${msg%$'\n'} |" >>"$table"
  fi
}

# ---- files ------------------------------------------------------------------------------------
eval_w() { run "$1" 2 "$3" -- "$bin/resnet-eval" --weights "$f/$2" --config "$cfg" "${d[@]}"; }
eval_w deep_shape deep_shape.safetensors "deep_shape.safetensors: safetensors header: JSON nested deeper than 64"
eval_w long_value long_dtype.safetensors "long_dtype.safetensors: tensor 'w': dtype \"AAAA"
eval_w dup_key_safetensors dup_key.safetensors 'key "w" appears twice'
eval_w memo_flood memo_flood.pt "memo_flood.pt: zip record data.pkl claims 120000004 bytes"
eval_w memo_flood_small memo_flood_small.pt "memo_flood_small.pt: data.pkl: more memo entries than objects"
eval_w append_flood append_flood.pt "append_flood.pt: data.pkl: more than the 64 MiB a pickle may take"
eval_w view_flood view_flood.pt "view_flood.pt: does not fit"
eval_w storage_overread storage_overread.pt "storage_overread.pt: storage big holds 960000000 bytes"
eval_w dup_key_pt dup_key.pt "dup_key.pt: data.pkl: key 'a' appears twice"
run init_from_memo_flood 2 "model.init_from: $f/memo_flood.pt" -- "$bin/resnet-train" --config "$cfg" "${d[@]}" \
  --set "model.init_from=\"$f/memo_flood.pt\"" --out "$tmp/out_init1" --no-progress
run init_from_dev_zero 2 "model.init_from: /dev/zero: is a character device" -- "$bin/resnet-train" --config "$cfg" \
  "${d[@]}" --set 'model.init_from="/dev/zero"' --out "$tmp/out_init2" --no-progress
[ ! -e "$tmp/out_init1" ] && [ ! -e "$tmp/out_init2" ] || fail "a refused run made its folder"
for c in deep_config deep_changes format5 step_string; do
  case $c in
    deep_*) needle="$c.ckpt: corrupt checkpoint metadata: JSON nested deeper than 64" ;;
    format5) needle="format5.ckpt: not a resnet-train checkpoint (metadata format 5)" ;;
    step_string) needle="step_string.ckpt: corrupt checkpoint metadata: state.step: expected an integer, got \"4\"" ;;
  esac
  run "${c}_eval" 2 "$needle" -- "$bin/resnet-eval" --checkpoint "$f/$c.ckpt" "${d[@]}"
done
run deep_config_export 2 "deep_config.ckpt: corrupt" -- "$bin/resnet-export" --checkpoint "$f/deep_config.ckpt" \
  --out "$tmp/x.pt"
run deep_config_analyze 2 "deep_config.ckpt: corrupt" -- "$bin/resnet-analyze" responses \
  --checkpoint "$f/deep_config.ckpt" "${d[@]}" --images 8 --out "$tmp/x_analysis"
run deep_config_init_from 2 "deep_config.ckpt" -- "$bin/resnet-train" --config "$cfg" "${d[@]}" \
  --set "model.init_from=\"$f/deep_config.ckpt\"" --out "$tmp/out_init3" --no-progress
# Class names are printed with their control characters escaped (run() checks the output).
cp -r "$tmp/data" "$tmp/data_escapes"
cp "$f/escape_names.txt" "$tmp/data_escapes/batches.meta.txt"
run escaped_class_names 0 "" -- "$bin/resnet-eval" --checkpoint "$tmp/base" --data-dir "$tmp/data_escapes"
grep -qF 'cl\x1b[31mass3\x07' "$tmp/stdout" || fail "escaped_class_names: the names are not shown escaped"

# ---- run folders: one planted entry each -------------------------------------------------------
# fresh NAME: a copy of the base run in $tmp/NAME (echoed).
fresh() { rm -rf "${tmp:?}/$1"; cp -a "$tmp/base" "$tmp/$1"; echo "$tmp/$1"; }
# resume LABEL RC NEEDLE RUN and export_run LABEL RC NEEDLE RUN: run() of resnet-train --resume
# (3 more steps: a checkpoint, metrics rows, log lines) and of resnet-export on RUN.
resume() { run "$1" "$2" "$3" -- "$bin/resnet-train" --resume "$4" "${d[@]}" --set train.iterations=6 --no-progress; }
export_run() { run "$1" "$2" "$3" -- "$bin/resnet-export" --checkpoint "$4" --out "$tmp/export_$(basename "$4").pt"; }
# plant KIND RUN PATH: puts a KIND entry at RUN/PATH (replacing what is there).
plant() {
  local kind=$1 path=$2/$3
  rm -rf "$path"
  case $kind in
    symlink) ln -s "$tmp/outside/victim" "$path" ;;
    dangling) ln -s "$tmp/outside/not_there" "$path" ;;
    dirlink) ln -s "$tmp/outside/folder" "$path" ;;
    devzero) ln -s /dev/zero "$path" ;;
    fifo) mkfifo "$path" ;;
    device) mknod "$path" c 1 5 2>/dev/null || ln -s /dev/zero "$path" ;;  # /dev/zero's numbers (root only)
    folder) mkdir "$path" ;;
    hardlink) ln "$tmp/outside/victim2" "$path" ;;
    huge) truncate -s 100G "$path" ;;
  esac
}
# Each (kind, path) once for resume; RC 2 and the path named, unless the entry is a temporary
# of ours (then it is removed, never followed, and the resume succeeds).
for path in .lock config.json metrics.jsonl metrics.csv train.log summary.json checkpoints/last.ckpt \
            checkpoints/last.ckpt.tmp metrics.jsonl.tmp config.json.tmp; do
  for kind in symlink fifo device folder hardlink huge; do
    case "$path:$kind" in
      # Fine: files replaced whole (a hard link is then no way out), or big where they are not read,
      # and temporaries of ours, which are removed (never followed) before they are created.
      .lock:huge|config.json:hardlink|config.json:huge|summary.json:huge|summary.json:hardlink|\
      metrics.csv:hardlink|metrics.csv:huge|train.log:huge) want=0 ;;
      *.tmp:folder) want=2 ;;
      *.tmp:*) want=0 ;;
      # Refused: a symlink, FIFO, device or folder in a run's file's place; a hard link written in
      # place (.lock, train.log) or read (metrics.jsonl, the checkpoint: what it holds is refused).
      *) want=2 ;;
    esac
    [ "$kind" != huge ] || [ "$path" != checkpoints/last.ckpt ] || continue  # a checkpoint is read in place
    r=$(fresh "plant_$kind")
    plant "$kind" "$r" "$path"
    resume "resume_${path//\//_}_$kind" "$want" "$r/$path" "$r"
  done
done
r=$(fresh plant_dirlink)
plant dirlink "$r" checkpoints
resume resume_checkpoints_dirlink 2 "$r/checkpoints: is a symlink" "$r"
r=$(fresh plant_events)
ev=$(cd "$r" && ls events.out.tfevents.*)
plant symlink "$r" "$ev"
resume resume_events_symlink 2 "$r/$ev: is a symlink" "$r"
r=$(fresh plant_events_hardlink)
plant hardlink "$r" "$ev"  # trimmed (replaced whole) before it is appended to: nothing goes to the link
resume resume_events_hardlink 0 "" "$r"
r=$(fresh plant_force)
plant symlink "$r" train.log
run train_force_symlink 2 "$r/train.log: is a symlink" -- "$bin/resnet-train" --config "$cfg" "${d[@]}" \
  --out "$r" --force --no-progress
r=$(fresh plant_new)
rm -rf "${r:?}"/* && plant symlink "$r" .lock
run train_new_lock_symlink 2 "$r/.lock: is a symlink" -- "$bin/resnet-train" --config "$cfg" "${d[@]}" \
  --out "$r" --no-progress
# metrics.jsonl, read by resume and by resnet-export: /dev/zero, a FIFO (no hang), deep or mistyped rows.
for kind in devzero fifo huge; do
  r=$(fresh "metrics_$kind")
  plant "$kind" "$r" metrics.jsonl
  export_run "export_metrics_$kind" 2 "$r/metrics.jsonl" "$r"
done
r=$(fresh metrics_deep)
cp "$f/deep_metrics_row.jsonl" "$r/metrics.jsonl"
resume resume_metrics_deep 2 "$r/metrics.jsonl line 1: JSON nested deeper than 64" "$r"
export_run export_metrics_deep 2 "$r/metrics.jsonl line 1: JSON nested deeper than 64" "$r"
r=$(fresh metrics_step_string)
cp "$f/step_string_row.jsonl" "$r/metrics.jsonl"
export_run export_metrics_step_string 2 "$r/metrics.jsonl line 1: step: expected an integer, got \"4\"" "$r"
r=$(fresh config_deep)
rm -r "$r/checkpoints" && cp "$f/deep_config.json" "$r/config.json"
resume resume_config_deep 2 "$r/config.json: JSON nested deeper than 64" "$r"
# The checkpoint of a run folder is read there without following a symlink, by every reader.
r=$(fresh ckpt_symlink)
ln -sf "$tmp/base/checkpoints/last.ckpt" "$r/checkpoints/last.ckpt"
run eval_checkpoint_symlink 2 "$r/checkpoints/last.ckpt: is a symlink" -- "$bin/resnet-eval" --checkpoint "$r" "${d[@]}"
export_run export_checkpoint_symlink 2 "$r/checkpoints/last.ckpt: is a symlink" "$r"
# An --out folder: resnet-analyze's JSON, its gnuplot script and picture (which gnuplot opens by
# name) are created new, through none of the symlinks planted under their names.
mkdir -p "$tmp/analysis_out"
for name in responses.json responses.json.tmp responses.gp responses.png responses.gp.log; do
  ln -s "$tmp/outside/victim3" "$tmp/analysis_out/$name"
done
run analyze_out_symlinks 0 "" -- "$bin/resnet-analyze" responses --checkpoint "$tmp/base" "${d[@]}" --images 8 \
  --out "$tmp/analysis_out"
for name in responses.json responses.gp responses.png; do
  [ -f "$tmp/analysis_out/$name" ] && [ ! -L "$tmp/analysis_out/$name" ] || fail "analysis: $name was not written new"
done
# The untouched base run still resumes: the refusals above are the plants'.
r=$(fresh control)
resume resume_control 0 "" "$r"
[ "$failures" = 0 ] || fail "$failures failures"
echo "hostile_input_test: $checked cases, each with its exit code, one line, bounded memory, nothing outside touched"
