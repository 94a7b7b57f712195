#!/usr/bin/env bash
# Installs the Python side of resnet-train (python/requirements.txt: torch with CUDA, torchvision,
# safetensors, onnx, onnxruntime, tensorboard) from the Python Package Index into a virtual
# environment, .venv/ (git-ignored; $RESNET_VENV to put it elsewhere):
#   scripts/python_env.sh            install, or check that .venv holds exactly what is pinned
#   scripts/python_env.sh --python   the same, then print the environment's python (for scripts)
# The pip build (scripts/build.sh --pip) links the LibTorch inside .venv's torch, and the tests
# check our files against .venv's PyTorch, safetensors, ONNX Runtime and TensorBoard.
#
# An environment is complete when every pin of python/requirements.txt is installed at its version
# and `pip check` finds every package's own requirements met. One that is not (an install that
# stopped half-way, pins that changed, another torch installed by hand) is removed and installed
# afresh: a rerun never builds on a half-installed one. A failed install says why in one line (the
# full pip log stays in .venv.install.log) and leaves no environment behind. About 5 GB (torch's
# CUDA libraries come as nvidia-* wheels); pip's own cache makes a second install fast.
set -euo pipefail
cd "$(dirname "$0")/.."
print_python=0
for arg in "$@"; do
  case "$arg" in
    --python) print_python=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "python_env.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
say() { if [ "$print_python" = 1 ]; then echo "$@" >&2; else echo "$@"; fi; }
die() { echo "python_env.sh: $*" >&2; exit 1; }

venv=${RESNET_VENV:-.venv}
requirements=python/requirements.txt
log=$venv.install.log
# The first python3 on PATH, as README's "On a GPU" block uses (Debian's needs python3-venv).
base=$(command -v python3) || die "no python3 (scripts/install_deps.sh installs it)"
torch_pin=$(sed -n 's/^torch==\([^ #]*\).*/\1/p' "$requirements")
[ -n "$torch_pin" ] || die "$requirements has no 'torch==VERSION' line"

installed_torch() { "$venv/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null; }

# Prints what is missing from $venv ("torch 2.10.0, pins 2.11.0"), nothing when it is complete.
missing_pins() {
  local have
  have=$("$venv/bin/python" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null) ||
    { echo "its python or pip does not run"; return; }
  grep -E '^[A-Za-z0-9_.-]+==' "$requirements" | sed 's/[[:space:]#].*//' | while IFS= read -r pin; do
    name=${pin%%==*}
    got=$(printf '%s\n' "$have" | grep -i "^${name//[-_.]/[-_.]}==" | head -n 1)
    [ "${got#*==}" = "${pin#*==}" ] || echo "$name ${got:+${got#*==}, }pinned ${pin#*==}"
  done | paste -sd ';' -
  "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null 2>&1 || echo "pip check fails"
}

if [ -L "$venv" ] || { [ -e "$venv" ] && [ ! -d "$venv" ]; }; then
  die "$venv is not a folder (a link or a file): move it away, then run this again"
fi
if [ -d "$venv" ]; then
  why=$(missing_pins | paste -sd ';' -)
  if [ -z "$why" ]; then
    say "python_env: $venv up to date (torch $(installed_torch))"
    [ "$print_python" = 0 ] || echo "$(cd "$venv" && pwd)/bin/python"
    exit 0
  fi
  say "python_env: $venv is not what $requirements pins ($(echo "$why" | cut -c1-160)): installing afresh"
  rm -rf "$venv"
fi

fail() {
  # pip's last ERROR line says what went wrong (no index reachable, no such version, a bad or
  # truncated wheel, a full disk); the rest is in the log.
  local line hint=""
  line=$(grep -E '^ERROR|Error|error:' "$log" | grep -v '^\s*$' | tail -n 1 | cut -c1-200)
  if grep -qE 'from versions: none|NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Network is unreachable|Connection refused' "$log"; then
    hint=" (no package index answered: check the network and pip's index settings)"
  fi
  rm -rf "$venv"
  die "$1: ${line:-see $log}$hint (full log: $log; nothing was left in $venv)"
}

say "python_env: creating $venv with $base ($("$base" --version 2>&1))"
"$base" -m venv "$venv" >"$log" 2>&1 ||
  { rm -rf "$venv"; die "'$base -m venv' failed (Debian: apt-get install python3-venv): $(tail -n 1 "$log")"; }
say "python_env: pip install -r $requirements (torch $torch_pin with its CUDA libraries: ~5 GB)"
"$venv/bin/python" -m pip install --disable-pip-version-check -r "$requirements" >>"$log" 2>&1 ||
  fail "pip install -r $requirements failed"
have=$(installed_torch) || fail "torch does not import in $venv"
[ "${have%%+*}" = "$torch_pin" ] || fail "pip installed torch $have, $requirements pins $torch_pin"
why=$(missing_pins | paste -sd ';' -)
[ -z "$why" ] || fail "after pip install, $venv is still not what $requirements pins ($why)"
say "python_env: $venv ready: $("$venv/bin/python" -c 'import torch; print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), LibTorch at {torch.utils.cmake_prefix_path}")')"
[ "$print_python" = 0 ] || echo "$(cd "$venv" && pwd)/bin/python"
