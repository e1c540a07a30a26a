#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Puts DPDK's driver SDK headers for the installed DPDK into
# .deps/dpdk-driver-sdk/ (git-ignored), where meson.build looks for them, and
# the sources of the DPDK example the RX interrupt test runs (l3fwd-power)
# into .deps/dpdk-examples/, where tests/harness/l3fwd_power.py builds it
# from.
#
# Debian builds DPDK without enable_driver_sdk, so libdpdk-dev lacks
# ethdev_driver.h, bus_vdev_driver.h and the headers they include, although
# the libraries export what these declare. They, and the example's sources,
# come from the Debian source package of exactly the installed version (the
# example is built against the installed libraries), fetched through a private apt
# configuration (deb-src twins of the system's deb sources, private lists
# and cache): the system's apt configuration and state are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

sdk=.deps/dpdk-driver-sdk
examples=.deps/dpdk-examples
version=$(dpkg-query -W -f='${Version}' libdpdk-dev)
current() {     # current <dir>: it holds what this version's source has
    [ "$(cat "$1/debian-version" 2>/dev/null)" = "$version" ]
}
if current "$sdk" && current "$examples"; then
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/parts" "$work/lists/partial" "$work/cache/archives/partial"
# one-line sources ("deb URI suite components") and deb822 stanzas alike
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && sed -n 's/^deb \(.*\)/deb-src \1/p' "$f"
done > "$work/parts/deb-src.list"
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && sed 's/^Types:.*/Types: deb-src/' "$f" > "$work/parts/$(basename "$f")"
done
apt_private=(-q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/parts"
             -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
             -o APT::Sandbox::User=root)
echo "dpdk-driver-headers: fetching the source of dpdk $version"
apt-get "${apt_private[@]}" update >/dev/null
(cd "$work" && apt-get "${apt_private[@]}" source --download-only "dpdk=$version" >/dev/null)
# apt checked the files against the signed Sources index
dpkg-source --no-check -x "$work"/dpdk_*.dsc "$work/src" >/dev/null

# keep <dir> <subdir> <paths in the source...>: copies them (files, or
# directories with their contents) into <dir>/<subdir>, then stamps <dir>
# with the version
keep() {
    local dest=$1 sub=$2 p
    shift 2
    rm -rf "$dest"
    mkdir -p "$dest/$sub"
    for p in "$@"; do
        cp -r "$work/src/$p" "$dest/$sub/"
    done
    echo "$version" > "$dest/debian-version"
    echo "dpdk-driver-headers:" "${@##*/}" "in $dest"
}
# the headers DPDK's meson lists as driver_sdk_headers for the libraries the
# PMD is built on; ethdev_driver.h includes dev_driver.h, which needs bus_driver.h
keep "$sdk" include lib/eal/include/dev_driver.h lib/eal/include/bus_driver.h \
    lib/ethdev/ethdev_driver.h lib/ethdev/ethdev_vdev.h drivers/bus/vdev/bus_vdev_driver.h
# all of its own sources: main.c, perf_core.c and their headers
keep "$examples" . examples/l3fwd-power
