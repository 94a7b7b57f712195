#!/usr/bin/env bash
# One prepared run for a GPU machine that has a CUDA `torch` for Python but nothing else of ours
# (e.g. the lent H100/H200): build against that torch's LibTorch, prove the fast path correct
# (resnet-bench --mode verify: graph vs eager, lr 0 and a milestone during replays, the run's
# summary, the fallback after a failed capture; it stops here if any check fails), then time the
# training step of each depth four ways, C++ and Python on the same card:
#   resnet-train eager fp32 (no graph, no channels_last) | resnet-train default (bf16 + channels_last
#   + whole-step CUDA graph) | PyTorch eager fp32 | PyTorch eager bf16 + channels_last
#
#   bench/gpu_session.sh [--prefix DIR] [--depths "20 56"] [--steps N] [--out FILE] [--rehearse]
#
# --prefix: CLI11/spdlog/fmt/nlohmann_json/OpenSSL unpacked by scripts/gpu_prefix.sh (carried along);
# default .deps/gpu-prefix when it exists. Synthetic batches: no dataset needed. For whole epochs
# and evaluation on real data, run bench/compare.sh after this (it reuses the build via BUILD_DIR).
# The build leaves TensorBoard and ONNX out, as on a GPU box that has neither library, so that a
# rehearsal on a machine that has them builds what the GPU box will.
# Without a CUDA device it stops after the build and --version, before the first command that
# needs one, and says so: exit 3, or 0 with --rehearse (a rehearsal on a CPU machine with the same
# torch: everything up to there ran).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=.deps/gpu-prefix
depths="20 56"
steps=200
out=bench/gpu_results.jsonl
rehearse=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --depths) depths=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --rehearse) rehearse=1; shift ;;
    *) echo "gpu_session.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
py=${PYTHON:-python3}
torch_prefix=$($py -c 'import torch; print(torch.utils.cmake_prefix_path)') || {
  echo "gpu_session.sh: no Python torch here" >&2; exit 1; }
cmake_prefix=$torch_prefix
openssl=()
if [ -d "$prefix/usr" ]; then
  p=$(cd "$prefix/usr" && pwd)
  cmake_prefix="$torch_prefix;$p"
  export LD_LIBRARY_PATH="$p/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The prefix's libcrypto by name: found even where g++ has no multiarch folders (CMakeLists.txt
  # adds the prefix's include/x86_64-linux-gnu itself), and never a different one of the machine's.
  [ ! -e "$p/lib/x86_64-linux-gnu/libcrypto.so" ] ||
    openssl=(-DOPENSSL_INCLUDE_DIR="$p/include" -DOPENSSL_CRYPTO_LIBRARY="$p/lib/x86_64-linux-gnu/libcrypto.so")
fi
export BUILD_DIR=${BUILD_DIR:-build-gpu}
echo "building into $BUILD_DIR against $torch_prefix"
build_start=$SECONDS
scripts/build.sh -DCMAKE_PREFIX_PATH="$cmake_prefix" "${openssl[@]}" -DRESNET_BUILD_TESTS=ON \
  -DRESNET_PYTHON="$(command -v "$py")" \
  -DCMAKE_DISABLE_FIND_PACKAGE_Protobuf=ON -DCMAKE_DISABLE_FIND_PACKAGE_ONNX=ON \
  --target resnet-train resnet-eval resnet-bench resnet-analyze resnet-export test_cuda >"$BUILD_DIR.build.log" 2>&1 || {
  tail -40 "$BUILD_DIR.build.log" >&2; exit 1; }
echo "built in $((SECONDS - build_start)) s on $(nproc) cores"
# The CUDA-only tests (graph vs eager, a bf16 graph run read back on the CPU, NCCL over two GPUs)
# and --version's: skipped without a device, run where there is one.
echo "+ $BUILD_DIR/tests/test_cuda" >&2
"$BUILD_DIR/tests/test_cuda" --gtest_brief=1 || { echo "gpu_session.sh: test_cuda failed (above)" >&2; exit 1; }
bin=$BUILD_DIR
"$bin/resnet-train" --version
if ! "$bin/resnet-train" --version | grep -q '^devices: .*cuda:0 '; then
  echo "gpu_session.sh: stopped before the first command that needs a CUDA device ($bin/resnet-bench --mode verify" \
       "on cuda): $("$bin/resnet-train" --version | sed -n 's/^devices: //p')" >&2
  [ "$rehearse" = 1 ] && { echo "gpu_session.sh: rehearsal complete: the build and --version ran"; exit 0; }
  exit 3
fi
: >"$out"
run() { echo "+ $*" >&2; "$@" | tee -a "$out"; }
# Correctness first: timings of a wrong step are worth nothing.
verify_out=${out%.jsonl}.verify.json
echo "+ $bin/resnet-bench --config configs/cifar_resnet20.json --mode verify" >&2
if ! "$bin/resnet-bench" --config configs/cifar_resnet20.json --mode verify --steps 20 >"$verify_out"; then
  cat "$verify_out"
  echo "gpu_session.sh: verify failed (above); no timings taken" >&2
  exit 1
fi
$py - "$verify_out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for c in r["checks"]:
    figures = ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("name", "passed"))
    print(f"verify {c['name']:<22} {'ok' if c['passed'] else 'FAILED'}  {figures}")
PY
eager=(--set runtime.precision=fp32 --set runtime.cuda_graph=false --set runtime.channels_last=false)
for d in $depths; do
  cfg=configs/cifar_resnet$d.json
  run "$bin/resnet-bench" --config "$cfg" --mode step --steps "$steps" "${eager[@]}"
  run "$bin/resnet-bench" --config "$cfg" --mode step --steps "$steps"
  run $py bench/pytorch_reference.py --mode bare --depth "$d" --steps "$steps"
  run $py bench/pytorch_reference.py --mode bare --depth "$d" --steps "$steps" --bf16 --channels-last
done
$py - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| impl | model | precision | channels_last | graph | ms/step | images/s |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r.get('impl', 'resnet-train')} | {r['model']} | {r['precision']} | {r['channels_last']} | "
          f"{r.get('cuda_graph', False)} | {r['ms_per_step']:.2f} | {r['images_per_sec']:.0f} |")
print(f"\ndevice: {rows[0]['device']}, torch {rows[0]['torch_version']}")
PY
