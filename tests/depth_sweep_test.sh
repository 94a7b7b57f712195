#!/usr/bin/env bash
# scripts/depth_sweep.sh on the CPU, as a lab would run it, on tiny synthetic CIFAR-10 files:
#   depth_sweep_test.sh SWEEP_SCRIPT BIN_DIR
# 2 depths (8, 14) x 2 seeds x {plain, resnet} with --jobs 2 --analyze gives 8 run folders that
# trained side by side with cores/2 threads each; summary.csv/json hold mean ± std, min, max that
# equal the values recomputed here from each run's own summary.json and metrics.csv; the plots
# exist; report.html renders in headless chromium with every image loaded; a re-run starts no
# resnet-train at all; Ctrl-C (SIGINT to the sweep's process group) stops the runs at a checkpoint
# and a re-run resumes and finishes them. Before all that, the same sweep without CIFAR-10 stops after
# the first run's failure with its reason; after it, a re-run with new --set values resumes runs
# through resnet-train's resume rules (a raised train.iterations is applied and reported, a changed
# train.batch_size refused).
set -uo pipefail
sweep=$1
real_bin=$2
py=/usr/bin/python3
[ -x $py ] || py=$(command -v python3)
fail=0
check() {  # check DESCRIPTION COMMAND...: run the command, report and remember a failure
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
for tool in parallel gnuplot chromium; do
  command -v $tool >/dev/null || { echo "FAIL $tool not found: a test dependency (scripts/install_deps.sh)"; exit 1; }
done
tmp=$(mktemp -d)
sweep_pid=""
cleanup() {
  # A sweep left running by a failed check: stop its process group the way Ctrl-C does.
  [ -z "$sweep_pid" ] || kill -INT -- -"$sweep_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# Synthetic CIFAR-10 (1 label byte + 3072 pixel bytes per record): 40 training and 40 test images
# whose pixels depend on the label, so the nets learn something and the seeds give different runs.
$py "$(dirname "$0")/tools/write_synthetic_cifar.py" "$tmp/data" 8 40
# The binaries, with resnet-train behind a wrapper that logs each start (to prove a re-run starts none).
mkdir -p "$tmp/bin"
ln -s "$real_bin/resnet-analyze" "$tmp/bin/resnet-analyze"
cat >"$tmp/bin/resnet-train" <<EOF
#!/bin/bash
echo "\$*" >>"$tmp/train_calls.log"
exec "$real_bin/resnet-train" "\$@"
EOF
chmod +x "$tmp/bin/resnet-train"
cat >"$tmp/recipe.json" <<'EOF'
{"train": {"batch_size": 20, "iterations": 20, "eval_every": 10, "checkpoint_every": 2, "log_every": 5,
           "lr_schedule": {"milestones": [15]}}}
EOF
out=$tmp/sweep
args=(--depths "8 14" --seeds 0,1 --jobs 2 --analyze --recipe "$tmp/recipe.json" --data-dir "$tmp/data"
      --bin "$tmp/bin" --out "$out")
runs=(plain-8-s0 plain-8-s1 plain-14-s0 plain-14-s1 resnet-8-s0 resnet-8-s1 resnet-14-s0 resnet-14-s1)

# ---- 0. no CIFAR-10 where it looks: the first failure stops the sweep -----------------------
mkdir "$tmp/nodata"
bash "$sweep" --depths 8 --seeds 0,1 --jobs 2 --recipe "$tmp/recipe.json" --data-dir "$tmp/nodata" \
  --bin "$tmp/bin" --out "$tmp/nodata-sweep" >"$tmp/nodata.log" 2>&1
rc=$?
check "a sweep without CIFAR-10 exits 2" [ $rc = 2 ]
check "its last line is the first run's reason" grep -qE \
  "^depth_sweep.sh: stopped: [a-z]+-8-s[01] \(started\) failed before training: resnet-train: error: $tmp/nodata/data_batch_1.bin: missing CIFAR-10 file" \
  <(tail -n 1 "$tmp/nodata.log")
check "no run started after it (at most the first 2 of 4)" [ "$(grep -c -- '--out' "$tmp/train_calls.log")" -le 2 ]
check "no summary, no traceback" bash -c "[ ! -e '$tmp/nodata-sweep/summary.md' ] && ! grep -q Traceback '$tmp/nodata.log'"
: >"$tmp/train_calls.log"

# ---- 1. the sweep -------------------------------------------------------------------------
t0=$(date +%s.%N)
bash "$sweep" "${args[@]}" >"$tmp/first.log" 2>&1
rc=$?
echo "first sweep: exit $rc in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s"
[ $rc = 0 ] || { echo "FAIL the sweep exited $rc:"; tail -n 30 "$tmp/first.log"; exit 1; }
n=0
for r in "${runs[@]}"; do [ -f "$out/$r/summary.json" ] && n=$((n + 1)); done
check "8 finished run folders" [ $n = 8 ]
check "no other run folder" [ "$(find "$out" -maxdepth 2 -name config.json | wc -l)" = 8 ]
check "8 resnet-train runs started" [ "$(grep -c -- '--out' "$tmp/train_calls.log")" = 8 ]
# Each run got its seed and, with 2 jobs on the CPU, cores/2 threads (at least 1).
want_threads=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))
check "seeds and threads in each config.json" $py - "$out" "$want_threads" "${runs[@]}" <<'EOF'
import json, sys
out, threads, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for r in runs:
    c = json.load(open(f"{out}/{r}/config.json"))
    assert c["runtime"]["seed"] == int(r[-1]), (r, c["runtime"]["seed"])
    assert c["runtime"]["threads"] == threads, (r, c["runtime"]["threads"])
    assert c["model"]["residual"] == r.startswith("resnet") and c["model"]["depth"] == int(r.split("-")[1]), r
EOF
# --jobs 2 ran runs side by side: some two runs' [start, end] intervals overlap (config.json is
# written when a run starts, summary.json when it ends).
check "two runs overlapped in time" $py - "$out" "${runs[@]}" <<'EOF'
import os, sys
out, runs = sys.argv[1], sys.argv[2:]
iv = [(os.stat(f"{out}/{r}/config.json").st_mtime, os.stat(f"{out}/{r}/summary.json").st_mtime) for r in runs]
assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(iv) for b in iv[i + 1:]), iv
EOF
# The statistics, recomputed here from each run's own files and compared with the sweep's.
check "summary mean/std/min/max equal the per-run values" $py - "$out" <<'EOF'
import csv, json, math, statistics, sys
out = sys.argv[1]
rows = {r["model"]: r for r in csv.DictReader(open(f"{out}/summary.csv"))}
groups = {g["model"]: g for g in json.load(open(f"{out}/summary.json"))["groups"]}
assert sorted(rows) == sorted(groups) == sorted(["plain-8", "plain-14", "resnet-8", "resnet-14"]), sorted(rows)
seeds_differ = False
for model in rows:
    test = [100 * json.load(open(f"{out}/{model}-s{s}/summary.json"))["final_test_error"] for s in (0, 1)]
    train = [100 * float(list(csv.DictReader(open(f"{out}/{model}-s{s}/metrics.csv")))[-1]["train_error"])
             for s in (0, 1)]
    seeds_differ |= test[0] != test[1] or train[0] != train[1]
    for name, v in (("test", test), ("train", train)):
        want = {"mean": sum(v) / 2, "std": abs(v[0] - v[1]) / math.sqrt(2), "min": min(v), "max": max(v)}
        for k, x in want.items():
            got_csv = float(rows[model][f"{name}_error_{k}_pct"])
            got_json = groups[model][f"{name}_error"][k]
            assert abs(got_csv - x) < 0.006, (model, name, k, got_csv, x)
            assert abs(got_json - x) < 1e-9, (model, name, k, got_json, x)
    assert rows[model]["seeds"] == "2", rows[model]
    assert rows[model]["paper_test_error_pct"] == "", rows[model]  # no ResNet-8/14 in Table 6
# Two seeds that gave bit-identical runs everywhere would mean the seed was not applied.
assert seeds_differ, "seed 0 and seed 1 gave the same errors in every group"
md = open(f"{out}/summary.md").read()
# The geometry analyses' numbers (deepest plain vs deepest ResNet; paths: the ResNet), from their JSON.
hessian = json.load(open(f"{out}/analysis/hessian/hessian.json"))
assert [s["label"].split(" ")[0] for s in hessian["subjects"]] == ["plain-14", "resnet-14"], hessian["subjects"]
for s in hessian["subjects"]:
    assert f"| {s['label']} | {s['parameters']:,} | {s['top_eigenvalues'][0]:.4g}" in md, s["label"]
paths = json.load(open(f"{out}/analysis/paths/paths.json"))["subjects"][0]
e = paths["effective"]
assert f"| {paths['label']} | 6 | {e['lo']}–{e['hi']} |" in md, paths["label"]
land = json.load(open(f"{out}/analysis/landscape/landscape.json"))
assert len(land["subjects"]) == 2 and land["grid"] == 11, land["grid"]
assert "## Loss landscape (Li et al. 2018)" in md
for model, r in rows.items():
    cell = f"{float(r['test_error_mean_pct']):.2f} ± {float(r['test_error_std_pct']):.2f}"
    assert f"| {model} |" in md and cell in md, (model, cell)
EOF
for f in training_error.png test_error.png analysis/responses/responses.png analysis/lesion/lesion_single.png \
         analysis/lesion/lesion_random.png analysis/landscape/landscape_contour.png \
         analysis/landscape/landscape_surface.png analysis/hessian/hessian.png analysis/paths/paths.png; do
  check "$f is a picture" [ "$(head -c 4 "$out/$f" 2>/dev/null | od -An -c | tr -d ' ')" = "211PNG" ]
done

# ---- 2. report.html in a real browser -----------------------------------------------------
# A copy of the page gets a script that, once the page has loaded, writes how many <img> there are
# and how many decoded (complete, naturalWidth > 0) into the DOM that chromium dumps.
browse() {  # browse PAGE -> "images N loaded M"
  sed 's#</body>#<script>window.addEventListener("load",function(){var a=Array.from(document.images);var ok=a.filter(function(i){return i.complete\&\&i.naturalWidth>0});document.body.insertAdjacentHTML("beforeend","<pre id=\\"imgcheck\\">images "+a.length+" loaded "+ok.length+"</pre>")});</script></body>#' \
    "$1" >"$tmp/browse.html"
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$tmp/chromium" \
    --virtual-time-budget=10000 --dump-dom "file://$tmp/browse.html" 2>"$tmp/chromium.err" |
    sed -n 's#.*<pre id="imgcheck">\([^<]*\)</pre>.*#\1#p'
}
check "report.html is self-contained (no script, no external reference)" \
  bash -c "! grep -Eq '<script|src=\"(https?:|file:|[^d])' '$out/report.html'"
seen=$(browse "$out/report.html")
echo "     chromium: $seen"
check "chromium loads all 9 images of report.html" [ "$seen" = "images 9 loaded 9" ]
# The check can fail: a page with one damaged image reports it.
$py - "$out/report.html" "$tmp/damaged.html" <<'EOF'
import sys
page = open(sys.argv[1]).read()
i = page.index("data:image/png;base64,") + len("data:image/png;base64,")
open(sys.argv[2], "w").write(page[:i] + "AAAA" + page[i + 40:])
EOF
check "chromium reports a damaged image" [ "$(browse "$tmp/damaged.html")" = "images 9 loaded 8" ]

# ---- 3. a re-run skips everything ---------------------------------------------------------
: >"$tmp/train_calls.log"
bash "$sweep" "${args[@]}" >"$tmp/second.log" 2>&1
check "the re-run exits 0" [ $? = 0 ]
check "the re-run starts no resnet-train" [ ! -s "$tmp/train_calls.log" ]
check "the re-run skips all 8 runs" [ "$(grep -c '^skip   .* (finished)$' "$tmp/second.log")" = 8 ]
check "the re-run skips all 5 analyses" [ "$(grep -c '^skip   analysis .* (up to date)$' "$tmp/second.log")" = 5 ]

# ---- 4. Ctrl-C mid-sweep, then resume -----------------------------------------------------
# Three runs to redo: two start at once, the third waits for a free job slot.
again=(plain-14-s1 resnet-14-s0 resnet-14-s1)
for r in "${again[@]}"; do rm -rf "${out:?}/$r"; done
set -m  # the sweep gets its own process group, as a shell's foreground job does
bash "$sweep" "${args[@]}" >"$tmp/third.log" 2>&1 &
sweep_pid=$!
set +m
ckpts=0
for _ in $(seq 3000); do  # up to 60 s for two runs to write a checkpoint
  ckpts=0
  for r in "${again[@]}"; do [ -f "$out/$r/checkpoints/last.ckpt" ] && ckpts=$((ckpts + 1)); done
  [ $ckpts -ge 2 ] && break
  sleep 0.02
done
kill -INT -- -"$sweep_pid"  # what Ctrl-C in a terminal does
wait "$sweep_pid"
rc=$?
sweep_pid=""
check "two runs had checkpointed before the interrupt" [ $ckpts -ge 2 ]
check "the interrupted sweep exits 130" [ $rc = 130 ]
interrupted=0 resumable=1
for r in "${again[@]}"; do
  if [ -f "$out/$r/summary.json" ] || [ ! -e "$out/$r" ]; then continue; fi
  if [ -f "$out/$r/checkpoints/last.ckpt" ] && grep -q 'interrupted (SIGINT)' "$out/$r/train.log"; then
    interrupted=$((interrupted + 1))
  else
    resumable=0; echo "     $r: neither finished, nor unstarted, nor stopped at a checkpoint"
  fi
done
check "every run finished, unstarted or stopped at a checkpoint by SIGINT" [ $resumable = 1 ]
check "at least one run was stopped mid-way" [ $interrupted -ge 1 ]
check "the console shows each interrupted run's own message" \
  [ "$(grep -c '^\[[a-z0-9-]*\] .*interrupted (SIGINT)' "$tmp/third.log")" = $interrupted ]
no_trainer_left() { ! pgrep -f "resnet-train --(config|resume) .*$tmp" >/dev/null; }
check "no resnet-train left running" no_trainer_left
bash "$sweep" "${args[@]}" >"$tmp/fourth.log" 2>&1
check "the re-run after Ctrl-C exits 0" [ $? = 0 ]
check "it resumes the interrupted runs" [ "$(grep -c "resume $out/" "$tmp/fourth.log")" -ge $interrupted ]
steps_ok=1
for r in "${runs[@]}"; do
  grep -q '"steps": 20' "$out/$r/summary.json" 2>/dev/null || { steps_ok=0; echo "     $r: not finished at step 20"; }
done
check "all 8 runs finished their 20 steps" [ $steps_ok = 1 ]

# ---- 5. new --set values on a re-run: through resnet-train's resume rules, in the report ------
# depth 8, seed 0 only: plain-8-s0 finished, resnet-8-s0 as a run stopped after its last
# checkpoint (no summary.json). A raised train.iterations resumes both; a changed batch size is
# refused and stops the sweep; the same --set again skips both.
rm "$out/resnet-8-s0/summary.json"
few=(--depths 8 --seeds 0 --jobs 2 --recipe "$tmp/recipe.json" --data-dir "$tmp/data" --bin "$tmp/bin" --out "$out")
bash "$sweep" "${few[@]}" --set train.iterations=22 >"$tmp/fifth.log" 2>&1
check "a re-run with --set train.iterations=22 exits 0" [ $? = 0 ]
check "it resumed the finished run with it" grep -q "resume $out/plain-8-s0 .*(finished; new: train.iterations=22)" "$tmp/fifth.log"
check "both runs trained on to 22 steps and recorded the change; the report shows it" $py - "$out" <<'EOF'
import csv, json, sys
out = sys.argv[1]
want = [{"step": 20, "key": "train.iterations", "from": 20, "to": 22, "forced": False}]
for r in ("plain-8-s0", "resnet-8-s0"):
    c = json.load(open(f"{out}/{r}/config.json"))
    assert c["train"]["iterations"] == 22 and c.get("resume_changes") == want, (r, c.get("resume_changes"))
    assert json.load(open(f"{out}/{r}/summary.json"))["steps"] == 22, r
rows = {row["run"].rsplit("/", 1)[-1]: row for row in csv.DictReader(open(f"{out}/runs.csv"))}
for r in ("plain-8-s0", "resnet-8-s0"):
    assert rows[r]["train.iterations"] == "22", rows[r]
    assert rows[r]["resume_changes"] == "step 20: train.iterations 20 -> 22", rows[r]
md = open(f"{out}/summary.md").read()
assert "| plain-8-s0 | finished | 0 | 22 | 22 | step 20: train.iterations 20 -> 22 |" in md, md
EOF
cp "$out/plain-8-s0/config.json" "$tmp/config-before.json"
bash "$sweep" "${few[@]}" --set train.iterations=22 --set train.batch_size=10 >"$tmp/sixth.log" 2>&1
check "a re-run with a new train.batch_size exits 2" [ $? = 2 ]
check "its last line: the run refused train.batch_size" grep -qE \
  "^depth_sweep.sh: stopped: [a-z]+-8-s0 \(resumed with this sweep's --set values\) failed before training: resnet-train: error: train.batch_size: a resumed run cannot change it \(20 -> 10\)" \
  <(tail -n 1 "$tmp/sixth.log")
check "the refused run's config.json is unchanged" cmp -s "$out/plain-8-s0/config.json" "$tmp/config-before.json"
: >"$tmp/train_calls.log"
bash "$sweep" "${few[@]}" --set train.iterations=22 >"$tmp/seventh.log" 2>&1
rc=$?
check "the same --set again: exit 0, no resnet-train started" bash -c "[ $rc = 0 ] && [ ! -s '$tmp/train_calls.log' ]"
if [ $fail != 0 ]; then
  for f in nodata first second third fourth fifth sixth seventh; do echo "---- $f.log"; tail -n 20 "$tmp/$f.log"; done
fi
exit $fail
