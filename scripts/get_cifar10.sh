#!/usr/bin/env bash
# Puts CIFAR-10 (binary version) at DEST/cifar-10-batches-bin (DEST defaults to data/).
#   scripts/get_cifar10.sh                  download the official cifar-10-binary.tar.gz, check its MD5
#   scripts/get_cifar10.sh --from PATH      take an existing folder or .tar.gz instead
#   options: --dest DIR, --md5 HASH (expected archive MD5; default: the official archive's)
# The folder appears complete or not at all: everything is unpacked and checked in a temporary
# folder beside it, then renamed into place.
set -euo pipefail

url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
md5="c32a1d4ab5d03f1284b67883e8d87530"
from=""
dest="$(cd "$(dirname "$0")/.." && pwd)/data"
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from=${2:?--from needs a path}; shift 2 ;;
    --dest) dest=${2:?--dest needs a folder}; shift 2 ;;
    --md5) md5=${2:?--md5 needs a hash}; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "get_cifar10.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "get_cifar10.sh: $*" >&2; exit 2; }
files=(data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin)

# Same rule as the reader: whole 3073-byte records, five training files of one size.
check_folder() {
  local dir=$1 size first=""
  for f in "${files[@]}"; do
    [ -f "$dir/$f" ] || die "$dir/$f: missing"
    size=$(stat -c %s "$dir/$f")
    if [ "$size" -eq 0 ] || [ $((size % 3073)) -ne 0 ]; then
      die "$dir/$f: $size bytes is not a whole number of 3073-byte records (truncated?)"
    fi
    if [ "$f" != test_batch.bin ]; then
      [ -z "$first" ] && first=$size
      [ "$size" -eq "$first" ] || die "$dir/$f: $size bytes, but data_batch_1.bin has $first (truncated?)"
    fi
  done
}

target="$dest/cifar-10-batches-bin"
if [ -d "$target" ]; then
  check_folder "$target"
  echo "CIFAR-10 already at $target"
  exit 0
fi
mkdir -p "$dest"
work=$(mktemp -d "$dest/.cifar10-XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "$from" ] && [ -d "$from" ]; then
  check_folder "$from"
  mkdir "$work/cifar-10-batches-bin"
  cp "${files[@]/#/$from/}" "$work/cifar-10-batches-bin/"
  [ -f "$from/batches.meta.txt" ] && cp "$from/batches.meta.txt" "$work/cifar-10-batches-bin/"
else
  archive="$work/cifar-10-binary.tar.gz"
  if [ -n "$from" ]; then
    [ -f "$from" ] || die "$from: no such file or folder"
    archive=$from
  else
    echo "downloading $url"
    curl -fL --retry 3 -o "$archive" "$url" || die "download failed; fetch cifar-10-binary.tar.gz by hand and use --from PATH"
  fi
  got=$(md5sum "$archive" | cut -d' ' -f1)
  [ "$got" = "$md5" ] || die "$archive: MD5 $got does not match $md5 (corrupt or not the CIFAR-10 binary archive)"
  tar -xzf "$archive" -C "$work" || die "$archive: cannot unpack"
  [ -d "$work/cifar-10-batches-bin" ] || die "$archive: has no cifar-10-batches-bin folder"
fi
check_folder "$work/cifar-10-batches-bin"
mv "$work/cifar-10-batches-bin" "$target"
echo "CIFAR-10 ready at $target"
