#!/usr/bin/env bash
# Every LibTorch library a tool loads comes from the LibTorch this build was configured with (for
# the pip build: the wheel's torch/lib, never Debian's /usr/lib copy of 1.13), and a CUDA build
# loads libtorch_cuda.so and libc10_cuda.so.
#   linked_libtorch_test.sh TOOL TORCH_LIB_DIR WITH_CUDA(ON|OFF)
set -uo pipefail
tool=$1 want=$(cd "$2" && pwd -P) cuda=$3
libs=$(ldd "$tool") || { echo "FAIL: ldd $tool failed"; exit 1; }
echo "$libs" | grep -E 'lib(torch|c10)[^ ]*\.so'
fails=0
while read -r name _ path _; do
  dir=$(cd "$(dirname "$path")" 2>/dev/null && pwd -P) || dir="(not found: $path)"
  [ "$dir" = "$want" ] || { echo "FAIL: $name from $dir, not $want"; fails=$((fails + 1)); }
done < <(echo "$libs" | grep -E '^\s*lib(torch|c10)[^ ]*\.so')
for lib in libtorch_cpu.so libc10.so $([ "$cuda" = ON ] && echo libtorch_cuda.so libc10_cuda.so); do
  echo "$libs" | grep -qE "^\s*${lib//./\\.}(\.[0-9.]+)? " || { echo "FAIL: $tool does not load $lib"; fails=$((fails + 1)); }
done
[ "$fails" = 0 ] && echo "linked_libtorch: every LibTorch library from $want (CUDA $cuda)"
exit $((fails > 0))
