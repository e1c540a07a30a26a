#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Runs every test: C unit tests and the whole end-to-end suite (QEMU guests
# included) against the normal build; the unit tests and the end-to-end
# cases that feed our code hostile or changing input (ASAN_E2E) again
# against the ASan+UBSan build (the fuzzers run under it too); the churn cases under
# ThreadSanitizer (scripts/test-tsan.sh); and a short run of every
# libFuzzer harness, at the lowest priority alongside the first end-to-end
# run (it takes what CPU the tests leave; minutes of wall time saved).
# Expects scripts/setup.sh --asan. Extra arguments go to every pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
PMD=drivers/net/vhost/librte_net_vhu.so

fuzz_log=$(mktemp /tmp/vhu-fuzz-log.XXXXXX)
echo "== fuzzing, ${VHU_FUZZ_SECONDS:-60} s per harness, in the background (nice 19) =="
setsid nice -n 19 scripts/fuzz.sh "${VHU_FUZZ_SECONDS:-60}" >"$fuzz_log" 2>&1 &
fuzz_pid=$!
trap 'kill -- -$fuzz_pid 2>/dev/null || true' EXIT

echo "== unit tests =="
meson test -C build --print-errorlogs
echo "== end-to-end tests =="
VHU_PMD="$(scripts/stage-pmd.sh build/$PMD)" $PY -m pytest -v -rP --durations=25 tests/ "$@"

echo "== unit tests, ASan+UBSan =="
meson test -C build-asan --print-errorlogs
# The end-to-end cases where our code meets hostile or changing input: the
# hostile catalogue, port lifecycle and callbacks, zero-copy, IOTLB, memory
# regions, dirty log and postcopy. The rest of the suite carries frames
# through paths these, the unit tests and the fuzzers already take under
# ASan (two lcores on shared state: the ThreadSanitizer pass below).
ASAN_E2E=(tests/test_hostile.py tests/test_e2e_stats_events.py tests/test_e2e_zerocopy.py
          tests/test_e2e_viommu.py tests/test_e2e_mem_slots.py tests/test_migration.py)
echo "== end-to-end tests, ASan+UBSan (${ASAN_E2E[*]}) =="
VHU_ASAN=1 VHU_PMD="$(scripts/stage-pmd.sh build-asan/$PMD)" $PY -m pytest -v "${ASAN_E2E[@]}" "$@"

# Our side under ThreadSanitizer: the cases where lcores poll while the
# front end churns (scripts/test-tsan.sh; ~2 min; --long for the hour).
echo "== end-to-end tests, ThreadSanitizer (churn cases) =="
scripts/test-tsan.sh "$@"

echo "== fuzzing (started with the first end-to-end run) =="
fuzz_rc=0
wait $fuzz_pid || fuzz_rc=$?
trap - EXIT
cat "$fuzz_log"
rm -f "$fuzz_log"
exit $fuzz_rc
