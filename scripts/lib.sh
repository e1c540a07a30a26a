# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
# Shared by scripts/setup.sh and scripts/fuzz.sh. Source it; do not run it.

# install_missing [apt-get install options...] -- packages...
# Installs those of the packages dpkg does not list as installed (nothing
# else, so a set-up machine is left alone and needs no root); runs
# apt-get update before the first install of the calling script only;
# through sudo when not root.
vhu_apt_updated=
install_missing() {
    local opts=() missing=() p sudo=
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
    [ $# -gt 0 ] || { echo "install_missing: no -- before the packages" >&2; return 2; }
    shift
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    echo "$(basename "$0" .sh): installing ${missing[*]}"
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    [ -n "$vhu_apt_updated" ] || { $sudo apt-get update -q; vhu_apt_updated=1; }
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${opts[@]}" "${missing[@]}"
}
