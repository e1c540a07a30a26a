#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs what a fresh Debian 12 machine lacks (only what is missing), then
# builds the project into build/ (and, with --asan, also build-asan/ with
# AddressSanitizer and UndefinedBehaviorSanitizer).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(dpdk libdpdk-dev dpdk-dev meson ninja-build pkg-config gcc
          python3-scapy python3-pyelftools python3-pytest libasan8 libubsan1)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

build() {   # build <dir> [meson options...]
    local dir=$1; shift
    [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"
    ninja -C "$dir"
}
build build
if [ "${1:-}" = "--asan" ]; then
    build build-asan -Db_sanitize=address,undefined -Db_lundef=false
fi
