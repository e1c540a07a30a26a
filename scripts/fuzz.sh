#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Runs every libFuzzer harness (fuzz/) for [seconds] each (default 60), one
# after the other, on a copy of its seed corpus (fuzz/corpus/), and fails if
# any of them finds a crash (or a reproducer of fuzz/crashes/ crashes again);
# then each again for half as long built without sanitizers (their checks
# keep stores that clang's optimiser otherwise may drop: docs/fuzzing.md,
# zero-copy-reap-tail). Sets up build-fuzz/ (clang, libFuzzer, ASan+UBSan)
# and build-fuzz-nosan/ first, installing only what is missing.
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
[ -f build-fuzz-nosan/build.ninja ] ||
    CC=clang meson setup build-fuzz-nosan -Dfuzz=true -Db_lundef=false
ninja -C build-fuzz-nosan

run=$(mktemp -d /tmp/vhu-fuzz-run.XXXXXX)
failed=()
# fuzz <build> <seconds>: every harness of <build> in turn
fuzz() {
    local build=$1 time=$2 h
    for h in "${harnesses[@]}"; do
        local name="$build-$h"
        rm -rf "$run/corpus_$name"
        cp -r "fuzz/corpus/fuzz_vhu_$h" "$run/corpus_$name"
        args=(-max_total_time="$time" -print_final_stats=1 -artifact_prefix="$run/$name-")
        [ -f "fuzz/fuzz_vhu_$h.dict" ] && args+=(-dict="fuzz/fuzz_vhu_$h.dict")
        echo "fuzz: $h ($build) for ${time} s"
        if "$build/fuzz/fuzz_vhu_$h" "${args[@]}" "$run/corpus_$name" >"$run/$name.log" 2>&1; then
            grep -E '^#[0-9]+[[:space:]]+DONE' "$run/$name.log" | tail -1 || true
        else
            failed+=("$name")
            grep -E 'FUZZ INVARIANT BROKEN|^SUMMARY|runtime error|Test unit written|deadly signal' \
                -A1 "$run/$name.log" | head -8 || true
        fi
    done
}
# replay <build>: every reproducer of fuzz/crashes/ once, on its harness
replay() {
    local build=$1 h
    for h in "${harnesses[@]}"; do
        local log="$run/$build-$h-replay.log"
        echo "fuzz: $h ($build) replays fuzz/crashes/fuzz_vhu_$h"
        if ! "$build/fuzz/fuzz_vhu_$h" "fuzz/crashes/fuzz_vhu_$h"/* >"$log" 2>&1; then
            failed+=("$build-$h-replay")
            grep -E '^Running:|FUZZ INVARIANT BROKEN|^SUMMARY|runtime error|deadly signal' "$log" |
                tail -4 || true
        fi
    done
}
replay build-fuzz
replay build-fuzz-nosan
fuzz build-fuzz "$secs"
fuzz build-fuzz-nosan $(( (secs + 1) / 2 ))

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}; logs and reproducers in $run"
    echo "fuzz: replay: <build>/fuzz/fuzz_vhu_<harness> <file> (VHU_FUZZ_LOG=1: with the log)"
    exit 1
fi
echo "fuzz: no crash in ${harnesses[*]}, with and without sanitizers"
[ "${VHU_FUZZ_KEEP:-0}" = 1 ] && echo "fuzz: run directory $run" || rm -rf "$run"
