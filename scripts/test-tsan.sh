#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# usage: scripts/test-tsan.sh [--long [MINUTES]] [pytest arguments...]
#
# End-to-end tests with our side's testpmd under ThreadSanitizer
# (VHU_TSAN=1, tests/README.md "VHU_TSAN=1"): the cases where our code runs
# on two or more threads at once while the front end churns -- the control
# thread handling a front end that goes and comes back, replaces its memory,
# stops, restarts or resizes its rings while lcores poll them; two
# forwarding lcores; zero-copy mbufs freed after their guest went; a port
# closed from its LSC callback or hot-unplugged while polled.
#
# Default: the short pass (about 2 minutes on 2 CPUs), as scripts/test-all.sh
# runs it. --long: the same cases with many reconnection rounds, repeated
# until MINUTES (default 60) have passed, then the whole suite except QEMU
# once. Every run fails on any ThreadSanitizer report that
# tests/sanitizers/tsan.supp does not suppress.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
PMD=drivers/net/vhost/librte_net_vhu.so

[ -f build-tsan/build.ninja ] || meson setup build-tsan -Db_sanitize=thread -Db_lundef=false
ninja -C build-tsan >/dev/null

long=0 minutes=60
if [ "${1:-}" = "--long" ]; then
    long=1; shift
    if [[ "${1:-}" =~ ^[0-9]+$ ]]; then minutes=$1; shift; fi
fi

# The churn cases (tests/README.md, "VHU_TSAN=1", says what each exercises).
CHURN=(
    "tests/test_e2e_multiqueue.py::test_every_queue_byte_exact[g2h-4q_2lcores-split]"
    "tests/test_e2e_multiqueue.py::test_every_queue_byte_exact[h2g-4q_2lcores-packed]"
    tests/test_e2e_reconnect.py
    tests/test_e2e_stats_events.py::test_link_and_queue_events_through_public_api
    tests/test_e2e_stats_events.py::test_hot_unplug_while_polled
    tests/test_e2e_stats_events.py::test_close_from_link_down_callback
    tests/test_e2e_mem_slots.py::test_regions_come_and_go_while_running
    tests/test_e2e_zerocopy.py::test_zero_copy_counts_and_threshold
)
HOSTILE_CHURN="while_running or then_restarted or pulled_from_under or shrunk_under"

export VHU_TSAN=1
export VHU_PMD="$(scripts/stage-pmd.sh build-tsan/$PMD)"

if [ $long = 0 ]; then
    VHU_RECONNECT_ROUNDS=2 $PY -m pytest -v "${CHURN[@]}" "$@"
    exit 0
fi

end=$(( $(date +%s) + minutes * 60 ))
round=0
while [ "$(date +%s)" -lt $end ]; do
    round=$((round + 1))
    echo "== TSan churn round $round ($(( (end - $(date +%s)) / 60 )) min left) =="
    VHU_RECONNECT_ROUNDS=20 $PY -m pytest -v "${CHURN[@]}" \
        "tests/test_e2e_multiqueue.py::test_every_queue_byte_exact" "$@"
    $PY -m pytest -v tests/test_hostile.py -k "$HOSTILE_CHURN" "$@"
done
echo "== TSan: the whole suite but QEMU =="
# test_e2e_rx_interrupt.py: l3fwd-power under the TSan runtime does not exit
# within 60 s of the harness's SIGINT (no report; cause not investigated),
# so its two tests fail on the quit, not on a race: left out.
VHU_RECONNECT_ROUNDS=4 $PY -m pytest -v -m "not qemu" --ignore=tests/test_e2e_rx_interrupt.py \
    tests/ "$@"
