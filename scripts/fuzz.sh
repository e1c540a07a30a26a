#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Runs every libFuzzer harness (fuzz/) for [seconds] each (default 60), one
# after the other, on a copy of its seed corpus (fuzz/corpus/), and fails if
# any of them finds a crash. Sets up build-fuzz/ first (clang, libFuzzer,
# ASan+UBSan), installing only what is missing. See docs/fuzzing.md.
#
# Environment: VHU_FUZZ_KEEP=1 (keep the run directory even when nothing
# was found).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
harnesses=(msg split packed nethdr)

source scripts/lib.sh
install_missing -- dpdk-dev libdpdk-dev meson ninja-build pkg-config python3-pyelftools \
    clang libclang-rt-14-dev llvm dpkg-dev xz-utils
scripts/dpdk-driver-headers.sh   # meson.build checks for them

[ -f build-fuzz/build.ninja ] ||
    CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-fuzz

run=$(mktemp -d /tmp/vhu-fuzz-run.XXXXXX)
failed=()
for h in "${harnesses[@]}"; do
    bin=build-fuzz/fuzz/fuzz_vhu_$h
    cp -r "fuzz/corpus/fuzz_vhu_$h" "$run/corpus_$h"
    args=(-max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$run/$h-")
    [ -f "fuzz/fuzz_vhu_$h.dict" ] && args+=(-dict="fuzz/fuzz_vhu_$h.dict")
    echo "fuzz: $h for ${secs} s"
    if "$bin" "${args[@]}" "$run/corpus_$h" >"$run/$h.log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$run/$h.log" | tail -1 || true
    else
        failed+=("$h")
        grep -E 'FUZZ INVARIANT BROKEN|^SUMMARY|runtime error|Test unit written' -A1 "$run/$h.log" |
            head -8 || true
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}; logs and reproducers in $run"
    echo "fuzz: replay: build-fuzz/fuzz/fuzz_vhu_<harness> <file> (VHU_FUZZ_LOG=1: with the log)"
    exit 1
fi
echo "fuzz: no crash in ${harnesses[*]}"
[ "${VHU_FUZZ_KEEP:-0}" = 1 ] && echo "fuzz: run directory $run" || rm -rf "$run"
