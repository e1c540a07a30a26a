#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs what a fresh Debian 12 machine lacks (only what is missing), then
# builds the project into build/ (and, with --asan, also build-asan/ with
# AddressSanitizer and UndefinedBehaviorSanitizer, build-tsan/ with
# ThreadSanitizer, and clang for the fuzzers),
# and caches what the QEMU tests' guests boot (tests/qemu/assets.py: kernel,
# busybox, ethtool via apt).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
install_missing -- dpdk libdpdk-dev dpdk-dev meson ninja-build pkg-config gcc \
    python3-scapy python3-pyelftools python3-pytest libasan8 libubsan1 libtsan2 dpkg-dev \
    xz-utils \
    valgrind
# for the QEMU tests; its Recommends (GUI, firmware, block drivers) are not needed
install_missing --no-install-recommends -- qemu-system-x86
# Open vSwitch with DPDK, for tests/test_ovs.py, which runs a private
# instance: the system service is not needed. Where no systemd manages it
# (a CI container), the daemons the package's init script may have just
# started are stopped again; with systemd they are the administrator's.
ovs_was_there=$(dpkg-query -W -f='${Status}' openvswitch-switch-dpdk 2>/dev/null || true)
install_missing -- openvswitch-switch-dpdk
if [ "$ovs_was_there" != "install ok installed" ] && [ ! -d /run/systemd/system ]; then
    $([ "$(id -u)" -eq 0 ] || echo sudo) /usr/share/openvswitch/scripts/ovs-ctl stop
fi

scripts/dpdk-driver-headers.sh

build() {   # build <dir> [meson options...]
    local dir=$1; shift
    [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"
    ninja -C "$dir"
}
build build
if [ "${1:-}" = "--asan" ]; then
    build build-asan -Db_sanitize=address,undefined -Db_lundef=false
    build build-tsan -Db_sanitize=thread -Db_lundef=false
    # what scripts/fuzz.sh builds with (test-all.sh runs it alongside the tests)
    install_missing -- clang libclang-rt-14-dev llvm
fi
/usr/bin/python3 -m tests.qemu.assets
