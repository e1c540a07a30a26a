#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Puts DPDK's driver SDK headers for the installed DPDK into
# .deps/dpdk-driver-sdk/ (git-ignored), where meson.build looks for them.
#
# Debian builds DPDK without enable_driver_sdk, so libdpdk-dev lacks
# ethdev_driver.h, bus_vdev_driver.h and the headers they include, although
# the libraries export what these declare. They come from the Debian source
# package of exactly the installed version, fetched through a private apt
# configuration (deb-src twins of the system's deb sources, private lists
# and cache): the system's apt configuration and state are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=.deps/dpdk-driver-sdk
version=$(dpkg-query -W -f='${Version}' libdpdk-dev)
if [ "$(cat "$dest/debian-version" 2>/dev/null)" = "$version" ]; then
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

# the headers DPDK's meson lists as driver_sdk_headers for the libraries the
# PMD is built on; ethdev_driver.h includes dev_driver.h, which needs bus_driver.h
rm -rf "$dest"
mkdir -p "$dest/include"
for h in lib/eal/include/dev_driver.h lib/eal/include/bus_driver.h \
         lib/ethdev/ethdev_driver.h lib/ethdev/ethdev_vdev.h \
         drivers/bus/vdev/bus_vdev_driver.h; do
    cp "$work/src/$h" "$dest/include/"
done
echo "$version" > "$dest/debian-version"
echo "dpdk-driver-headers: $(ls "$dest/include" | tr '\n' ' ')in $dest/include"
