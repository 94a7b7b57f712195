#!/usr/bin/env bash
# scripts/get_cifar10.sh --from: folders and archives are checked, and a failure leaves nothing.
set -u
script=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }

# A small synthetic folder: 3 records per file, labels 0.
mkdir -p "$tmp/src/cifar-10-batches-bin"
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
  head -c $((3 * 3073)) /dev/zero >"$tmp/src/cifar-10-batches-bin/$f.bin"
done
printf 'airplane\n' >"$tmp/src/cifar-10-batches-bin/batches.meta.txt"

"$script" --from "$tmp/src/cifar-10-batches-bin" --dest "$tmp/a" >/dev/null
check "folder copied" '[ -f "$tmp/a/cifar-10-batches-bin/test_batch.bin" ] && [ -f "$tmp/a/cifar-10-batches-bin/batches.meta.txt" ]'
"$script" --from "$tmp/src/cifar-10-batches-bin" --dest "$tmp/a" | grep -q "already" ; check "re-run is a no-op" '[ $? = 0 ]'

tar -czf "$tmp/c.tar.gz" -C "$tmp/src" cifar-10-batches-bin
sum=$(md5sum "$tmp/c.tar.gz" | cut -d' ' -f1)
"$script" --from "$tmp/c.tar.gz" --md5 "$sum" --dest "$tmp/b" >/dev/null
check "archive unpacked" '[ -f "$tmp/b/cifar-10-batches-bin/data_batch_5.bin" ]'

"$script" --from "$tmp/c.tar.gz" --dest "$tmp/c" 2>"$tmp/err"; rc=$?
check "wrong MD5 refused (exit 2)" '[ $rc = 2 ] && grep -q "MD5" "$tmp/err"'
check "wrong MD5 leaves nothing" '[ -z "$(ls -A "$tmp/c")" ]'

head -c 5000 /dev/zero >"$tmp/src/cifar-10-batches-bin/data_batch_3.bin"
"$script" --from "$tmp/src/cifar-10-batches-bin" --dest "$tmp/d" 2>"$tmp/err"; rc=$?
check "truncated file refused, named" '[ $rc = 2 ] && grep -q "data_batch_3.bin" "$tmp/err"'
check "truncated file leaves nothing" '[ -z "$(ls -A "$tmp/d")" ]'
exit $((fails > 0))
