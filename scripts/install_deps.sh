#!/usr/bin/env bash
# Installs what resnet-train needs on Debian 12 / Ubuntu 22.04+. Safe to re-run: apt skips what is
# already installed.
#   scripts/install_deps.sh          to build, train, evaluate, analyse and plot (scripts/quickstart.sh)
#   scripts/install_deps.sh --test   also the test toolchain (scripts/test.sh): GoogleTest, clang for
#                                    the fuzzers, chromium, a one-node Slurm, the independent readers
#                                    the tests use, OpenCV for the ONNX export's tests
# PyPI's packages (torch with CUDA, safetensors, onnx, onnxruntime, tensorboard) are not apt's:
# scripts/python_env.sh installs them into .venv/.
set -euo pipefail

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install_deps.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

# Building and using the tools.
packages=(
  build-essential cmake ccache pkg-config
  libtorch-dev            # LibTorch (CPU) and its CMake config
  libgloo-dev             # c10d's Gloo headers (ProcessGroupGloo.hpp includes them; libtorch-dev does not pull them in)
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libzip-dev              # reads PyTorch zip files (.pt weights, old checkpoints), sizes bounded first
  libssl-dev              # OpenSSL's libcrypto: the SHA-256 of weight files (src/util/sha256.cpp)
  gnuplot-nox             # plots for sweeps and analyses
  libonnx-dev             # resnet-export --format onnx: the ONNX library's protobuf classes and checker
  protobuf-compiler libprotobuf-dev libboost-dev   # TensorBoard event files (event.proto, CRC-32C)
  parallel                # GNU parallel: depth_sweep.sh --jobs N runs N trainings at once
  python3                 # depth_sweep.sh's summary over seeds (scripts/sweep_report.py, stdlib only)
  python3-venv            # scripts/python_env.sh: the virtual environment for PyPI's torch
  xz-utils ca-certificates curl                    # scripts/get_cifar10.sh
)
# The test toolchain.
test_packages=(
  googletest libgtest-dev libbenchmark-dev
  clang                   # the libFuzzer targets (scripts/fuzz.sh, run by scripts/test.sh)
  python3-protobuf python3-crc32c                  # the tests' independent reader of TensorBoard files
  python3-torch python3-torchvision                # torchrun launches ranks (test_dist); weights and
                                                   # checkpoints are checked against PyTorch itself
  chromium                # headless: the test that opens the sweep's report.html and checks its images
  slurm-wlm munge         # a one-node Slurm for the test of depth_sweep.sh --slurm (the test starts its own
                          # daemons with their own config; where systemd runs, apt also enables the services)
  python3-opencv          # the ONNX tests: OpenCV's DNN module as a second runtime
  universal-ctags         # tests/function_length.sh: how long each function in src/ is
  clang-format            # tests/format_test.sh: the sources in .clang-format's style (Debian 12: version 14)
)
if [ "$want_test" = 1 ]; then
  packages+=("${test_packages[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# libFuzzer's runtime: its own package on Debian 12 (libclang-rt-dev, only a Recommends of
# clang), inside libclang-common-*-dev (a dependency of clang) on Ubuntu 22.04.
want_fuzzer_rt=0
if [ "$want_test" = 1 ] && ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/*/libclang_rt.fuzzer*.a" >/dev/null; then
  want_fuzzer_rt=1
fi
if [ ${#missing[@]} -eq 0 ] && [ "$want_fuzzer_rt" = 0 ]; then
  echo "install_deps: all packages present"
else
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  if [ "$want_fuzzer_rt" = 1 ] && apt-cache show libclang-rt-dev >/dev/null 2>&1; then
    missing+=(libclang-rt-dev)
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  echo "install_deps: installed ${missing[*]}"
fi
