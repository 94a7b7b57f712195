#!/usr/bin/env bash
# Unpacks Debian 12's CLI11, spdlog, fmt, nlohmann_json, libzip, GoogleTest (for the CUDA-only tests)
# and OpenSSL's libcrypto (libssl-dev for
# the headers, libssl3 for libcrypto.so.3: a machine with only a pip torch and g++ need not have
# either) into a prefix (default .deps/gpu-prefix, git-ignored) for a machine that has a CUDA
# LibTorch but not these libraries, such as the lent GPU machine, which reaches no network. Run it
# here, carry the prefix there:
#
#   scripts/gpu_prefix.sh [PREFIX]
#   (there) bench/gpu_session.sh --prefix .deps/gpu-prefix
#
# Uses `apt-get download` (no root needed, nothing is installed); a few MB in all.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-.deps/gpu-prefix}
command -v apt-get >/dev/null || { echo "gpu_prefix.sh: needs apt-get (Debian/Ubuntu)" >&2; exit 1; }
work=$(mktemp -d)
chmod 755 "$work"  # apt-get download drops privileges to _apt where it can
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q libcli11-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 \
  nlohmann-json3-dev libzip-dev libzip4 libssl-dev libssl3 libgtest-dev >/dev/null) || {
  echo "gpu_prefix.sh: apt-get download failed (run apt-get update first?)" >&2; exit 1; }
rm -rf "$prefix.partial"
mkdir -p "$prefix.partial"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$prefix.partial"; done
# OpenSSL's static libraries (6 MB) are not linked: the build uses libcrypto.so.3.
rm -f "$prefix.partial"/usr/lib/*/libcrypto.a "$prefix.partial"/usr/lib/*/libssl.a
rm -rf "$prefix" && mv "$prefix.partial" "$prefix"
echo "$prefix: $(du -sh "$prefix" | cut -f1) ($(ls "$work" | tr '\n' ' '))"
