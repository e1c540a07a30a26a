#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# usage: stage-pmd.sh <plugin .so>
# Prints a path EAL will load the plugin from. EAL refuses `-d` plugins below a
# world-writable directory (a checkout under /tmp, say); such a plugin is
# copied into a private directory under $HOME/.cache/vhu first.
set -euo pipefail
so=$(realpath "$1")
dir=$(dirname "$so")
while [ "$dir" != "/" ]; do
    if [ -n "$(find "$dir" -maxdepth 0 -perm -o+w)" ]; then
        dest="${HOME:-/root}/.cache/vhu/$(echo "$so" | md5sum | cut -c1-12)"
        mkdir -p "$dest" && chmod 700 "${HOME:-/root}/.cache/vhu" "$dest"
        cp "$so" "$dest/" && echo "$dest/$(basename "$so")"
        exit 0
    fi
    dir=$(dirname "$dir")
done
echo "$so"
