#!/usr/bin/env bash
# scripts/python_env.sh when things go wrong, without downloading anything (an index that does not
# answer, a wheel folder instead): no package index, a truncated wheel, an environment holding
# another torch, a link where the environment should be. Each is exit 1 with one line on stderr
# that says what failed, and no environment left behind for a rerun to trip over.
#   python_env_test.sh SOURCE_DIR
set -uo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Runs the script against $work/env with an index on a closed port and wheels only from $work/wheels.
run_env() {
  PIP_INDEX_URL=http://127.0.0.1:9/simple PIP_FIND_LINKS="$work/wheels" PIP_RETRIES=0 PIP_DEFAULT_TIMEOUT=5 \
    RESNET_VENV="$work/env" "$src/scripts/python_env.sh" >"$work/out" 2>"$work/err"
}
# Expects exit 1, exactly one line on stderr containing $1, and no environment left.
expect_refusal() {
  local rc=$1 what=$2 needle=$3
  [ "$rc" = 1 ] || bad "$what: exit $rc, wanted 1 ($(cat "$work/err"))"
  [ "$(wc -l <"$work/err")" = 1 ] || bad "$what: stderr is not one line: $(cat "$work/err")"
  grep -q -- "$needle" "$work/err" || bad "$what: stderr lacks '$needle': $(cat "$work/err")"
  [ ! -e "$work/env" ] || bad "$what: $work/env was left behind"
  echo "ok: $what: $(cat "$work/err")"
}

mkdir -p "$work/wheels"
# 1. No package index answers.
run_env; expect_refusal $? "no index" "no package index answered"

# 2. A truncated wheel (a download cut short) where pip finds it.
pin=$(sed -n 's/^torch==\([^ #]*\).*/\1/p' "$src/python/requirements.txt")
tag=$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
head -c 4096 /dev/urandom >"$work/wheels/torch-$pin-$tag-$tag-manylinux_2_28_x86_64.whl"
run_env; expect_refusal $? "truncated wheel" "pip install -r python/requirements.txt failed"
rm -f "$work/wheels"/*

# 3. An environment that holds another torch (a tiny wheel named torch 1.0.0, installed by hand).
/usr/bin/python3 - "$work/wheels" <<'PY'
import sys, zipfile
d = "torch-1.0.0.dist-info"
with zipfile.ZipFile(f"{sys.argv[1]}/torch-1.0.0-py3-none-any.whl", "w") as z:
    z.writestr("torch/__init__.py", "__version__ = '1.0.0'\n")
    z.writestr(f"{d}/METADATA", "Metadata-Version: 2.1\nName: torch\nVersion: 1.0.0\n")
    z.writestr(f"{d}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(f"{d}/RECORD", "")
PY
python3 -m venv "$work/env" && "$work/env/bin/python" -m pip install -q --no-index \
  --find-links "$work/wheels" torch==1.0.0 || bad "could not make the environment with torch 1.0.0"
run_env; rc=$?
grep -q "torch 1.0.0, pinned $pin" "$work/out" || bad "another torch: not named: $(cat "$work/out")"
expect_refusal $rc "another torch" "pip install -r python/requirements.txt failed"

# 4. A link where the environment should be: refused, the link and its target untouched.
mkdir "$work/target" && ln -s "$work/target" "$work/env"
run_env; rc=$?
[ "$rc" = 1 ] && grep -q "is not a folder" "$work/err" && [ -L "$work/env" ] && [ -d "$work/target" ] ||
  bad "a link as the environment: exit $rc, $(cat "$work/err")"
rm "$work/env"

[ "$fails" = 0 ] && echo "python_env_test: all cases passed" && exit 0
echo "python_env_test: $fails failed"; exit 1
