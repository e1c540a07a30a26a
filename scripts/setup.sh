#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs what a fresh Debian 12 machine lacks (only what is missing), then
# builds the project into build/ (and, with --asan, also build-asan/ with
# AddressSanitizer and UndefinedBehaviorSanitizer, and clang for the fuzzers),
# and caches what the QEMU tests' guests boot (tests/qemu/assets.py: kernel,
# busybox, ethtool via apt).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
install_missing -- dpdk libdpdk-dev dpdk-dev meson ninja-build pkg-config gcc \
    python3-scapy python3-pyelftools python3-pytest libasan8 libubsan1 dpkg-dev xz-utils
# for the QEMU tests; its Recommends (GUI, firmware, block drivers) are not needed
install_missing --no-install-recommends -- qemu-system-x86

scripts/dpdk-driver-headers.sh

build() {   # build <dir> [meson options...]
    local dir=$1; shift
    [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"
    ninja -C "$dir"
}
build build
if [ "${1:-}" = "--asan" ]; then
    build build-asan -Db_sanitize=address,undefined -Db_lundef=false
    # what scripts/fuzz.sh builds with (test-all.sh runs it alongside the tests)
    install_missing -- clang libclang-rt-14-dev llvm
fi
/usr/bin/python3 -m tests.qemu.assets
