#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) into build-fuzz/ and runs them:
#   scripts/fuzz.sh --replay            every committed seed once: deterministic, what the test
#                                       suite runs; non-zero exit on any finding
#   scripts/fuzz.sh --seconds S         the seeds, then S seconds of fresh fuzzing per target
#   scripts/fuzz.sh --minutes N [--merge]  N minutes per target; --merge adds the inputs that
#                                       reach new coverage to tests/fuzz/corpus/<target>/
#   options: --targets "config cifar10 checkpoint weights", --build-only
# Targets: fuzz_config (config file + --set), fuzz_cifar10 (binary reader, splits),
# fuzz_checkpoint (CheckpointReader, load_model into a small model), fuzz_weights (.pt and
# .safetensors state_dicts: src/interop). A finding leaves its input
# in build-fuzz/findings/; reproduce with build-fuzz/tests/fuzz/fuzz_<target> FILE.
# The readers' budgets (docs/safety.md) are fuzzed too: inputs up to 1 MiB (-max_len: a JSON
# nested 100,000 deep is 200 KB, a memo flood 117 KB), structure-aware seeds (deep JSON, memo,
# item and view floods, duplicate keys: tests/fuzz/make_bound_seeds.py, and the hostile files of
# tests/tools/make_hostile_inputs.py made here), and an RSS limit a few hundred MB above what a
# target needs, so that a bomb is a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}  # a second clone elsewhere hits the first one's cache
mode=replay
seconds=0
minutes=0
merge=0
targets="config cifar10 checkpoint weights"
while [ $# -gt 0 ]; do
  case "$1" in
    --replay) mode=replay; shift ;;
    --seconds) mode=fuzz; seconds=${2:?--seconds needs a number}; shift 2 ;;
    --minutes) mode=fuzz; minutes=${2:?--minutes needs a number}; shift 2 ;;
    --merge) merge=1; shift ;;
    --targets) targets=${2:?--targets needs a list}; shift 2 ;;
    --build-only) mode=build; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

build=${FUZZ_BUILD_DIR:-build-fuzz}
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (scripts/install_deps.sh)" >&2; exit 2; }
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
  -DRESNET_FUZZ=ON -DRESNET_BUILD_TESTS=OFF >"$build/configure.log" 2>&1 || {
  cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" --target fuzz -j "$(nproc)" >"$build/build.log" 2>&1 || {
  tail -n 40 "$build/build.log" >&2; echo "fuzz.sh: build failed (log: $build/build.log)" >&2; exit 1; }
bin=$build/tests/fuzz

# Checkpoint seeds too big to commit twice: a real ResNet-8 checkpoint in today's format (written
# by fuzz_checkpoint_seed), the version-1 run kept as a test fixture, and the inputs that broke
# LibTorch's reader before no user file went through it (tests/fuzz/libtorch_crashes/).
seeds=$build/seeds
if [ ! -s "$seeds/checkpoint/resnet8.ckpt" ] || [ "$bin/fuzz_checkpoint_seed" -nt "$seeds/checkpoint/resnet8.ckpt" ]; then
  "$bin/fuzz_checkpoint_seed" "$seeds/checkpoint" >/dev/null
fi
cp tests/fixtures/v1_run/checkpoints/last.ckpt "$seeds/checkpoint/resnet8_v1.ckpt"
cp tests/fuzz/libtorch_crashes/*.ckpt "$seeds/checkpoint/"
# The hostile files (each up to 1 MiB, too big to commit): bombs built on the ResNet-8 checkpoint.
hostile=$seeds/hostile
if [ ! -s "$hostile/view_flood.pt" ] || [ tests/tools/make_hostile_inputs.py -nt "$hostile/view_flood.pt" ] ||
   [ "$seeds/checkpoint/resnet8.ckpt" -nt "$hostile/view_flood.pt" ]; then
  python3 tests/tools/make_hostile_inputs.py "$hostile" "$seeds/checkpoint/resnet8.ckpt" ||
    { echo "fuzz.sh: cannot make the hostile seeds" >&2; exit 1; }
fi
mkdir -p "$seeds/weights" "$seeds/config"
cp "$hostile"/*.pt "$hostile"/*.safetensors "$seeds/weights/"
cp "$hostile"/*.ckpt "$seeds/checkpoint/"
cp "$hostile/deep_config.json" "$seeds/config/"
[ "$mode" = build ] && { echo "fuzz.sh: built $bin/fuzz_{config,cifar10,checkpoint,weights}"; exit 0; }

# The sanitizer options are built into the targets (tests/fuzz/fuzz_runtime.cpp: no leak
# checks, allocations above 2 GB fail as they would on a small machine, UBSan findings abort);
# ASAN_OPTIONS / UBSAN_OPTIONS from the environment override them.
findings=$build/findings
mkdir -p "$findings"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A replay runs every seed once and stops (-runs=0): the same inputs on every machine, so the
# test suite cannot fail on what a random search happens to find that day. Searching is
# --seconds/--minutes, run by hand (README: "Fuzzing and sanitizers").
if [ "$mode" = replay ]; then limits=(-runs=0); else limits=(-max_total_time=$((seconds + minutes * 60))); fi

# Peak RSS (MB) each target may reach on any input: what it needs, and a few hundred MB more for
# what a reader may allocate from a 1 MiB input. Replaying the seeds peaks at (Debian 12, LibTorch
# 1.13 + ASan with its quarantine at 32 MB: tests/fuzz/fuzz_runtime.cpp) config 328, cifar10 300,
# weights 505 (the 64 MiB pickle budget filled by an item flood), checkpoint 337 MB.
rss_limit() {
  case $1 in
    config|cifar10) echo 800 ;;
    weights|checkpoint) echo 1024 ;;
    *) echo 2048 ;;
  esac
}

failed=()
for t in $targets; do
  exe=$bin/fuzz_$t
  [ -x "$exe" ] || { echo "fuzz.sh: no target '$t'" >&2; exit 2; }
  corpus=tests/fuzz/corpus/$t
  dirs=("$corpus")
  [ -d "$seeds/$t" ] && dirs+=("$seeds/$t")
  mkdir -p "$work/$t"
  log=$build/fuzz_$t.log
  # The first folder receives new inputs: a scratch one, so that the committed corpus changes
  # only through --merge. -rss_limit_mb: what the target needs (LibTorch + ASan: see rss_limit)
  # and a few hundred MB for what a reader may take of a 1 MiB input; -max_len: 1 MiB inputs.
  start=$(date +%s)
  if "$exe" "$work/$t" "${dirs[@]}" "${limits[@]}" -timeout=30 -rss_limit_mb="$(rss_limit "$t")" -max_len=1048576 \
       -print_final_stats=1 -artifact_prefix="$findings/$t-" >"$log" 2>&1; then
    status=ok
  else
    status=FINDING
    failed+=("$t")
  fi
  # libFuzzer's "#RUNS INITED|DONE cov: EDGES ft: FEATURES corp: N/SIZE ... exec/s: E" lines.
  inited=$(grep -aoE 'INITED cov: [0-9]+ ft: [0-9]+' "$log" | head -n 1 | sed 's/INITED //' || true)
  done_line=$(grep -aE '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 |
              sed -E 's/^#([0-9]+)[[:space:]]+DONE +(cov: [0-9]+ ft: [0-9]+ corp: [^ ]+).*(exec\/s: [0-9]+).*/\1 runs, \2, \3/' || true)
  echo "fuzz_$t: $status in $(( $(date +%s) - start )) s; seeds: ${inited:-?}; end: ${done_line:-?}"
  if [ "$status" != ok ]; then
    grep -E 'FUZZ FINDING|ERROR: (AddressSanitizer|libFuzzer)|runtime error|Test unit written' "$log" | head -n 5 >&2 || true
  fi
  if [ "$merge" = 1 ] && [ "$status" = ok ]; then
    # Only inputs below 64 KB join the committed corpus (a mutated checkpoint is 300 KB).
    mkdir -p "$work/$t.small"
    find "$work/$t" -type f -size -64k -exec cp {} "$work/$t.small/" \;
    before=$(ls "$corpus" | wc -l)
    "$exe" -merge=1 -rss_limit_mb="$(rss_limit "$t")" "$corpus" "$work/$t.small" >"$build/merge_$t.log" 2>&1
    echo "fuzz_$t: corpus $before -> $(ls "$corpus" | wc -l) files ($(du -sh "$corpus" | cut -f1))"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: findings in ${failed[*]} (inputs in $findings/)" >&2
  exit 1
fi
echo "fuzz.sh: no findings (${targets// /, })"
