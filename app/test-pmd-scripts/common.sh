# SPDX-License-Identifier: BSD-3-Clause
# Shared by the set-up scripts here: where things are, and how to start and
# stop testpmd processes. Source it; do not run it.

VHU_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VHU_PMD=${VHU_PMD:-$VHU_ROOT/build/drivers/net/vhost/librte_net_vhu.so}
TESTPMD=${TESTPMD:-dpdk-testpmd}
EAL_COMMON=(--no-pci --no-huge -m 1024)
WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/testpmd-setup.XXXXXX")
PIDS=()

[ -f "$VHU_PMD" ] || { echo "no PMD at $VHU_PMD: build first (scripts/setup.sh)" >&2; exit 1; }
VHU_PMD=$("$VHU_ROOT/scripts/stage-pmd.sh" "$VHU_PMD")

cleanup() {
    for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    [ -n "${KEEP_LOGS:-}" ] && echo "logs kept in $WORKDIR" || rm -rf "$WORKDIR"
}
trap cleanup EXIT

# start_testpmd <name> <testpmd args...>: runs in the background, output in $WORKDIR/<name>.log.
# Its stdin is a fifo this shell holds open: testpmd -a quits when stdin ends.
start_testpmd() {
    local name=$1 fd; shift
    mkfifo "$WORKDIR/$name.stdin"
    exec {fd}<>"$WORKDIR/$name.stdin"
    stdbuf -oL "$TESTPMD" "$@" < "$WORKDIR/$name.stdin" > "$WORKDIR/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_${name}=$!"
}

# wait_for_file <path> <seconds>
wait_for_file() {
    for _ in $(seq $(( $2 * 10 ))); do [ -e "$1" ] && return 0; sleep 0.1; done
    echo "timed out waiting for $1" >&2; return 1
}

# wait_for_log <name> <regex> <seconds>: until a line of <name>'s log matches.
wait_for_log() {
    for _ in $(seq $(( $3 * 10 ))); do
        grep -qE "$2" "$WORKDIR/$1.log" && return 0
        sleep 0.1
    done
    echo "timed out waiting for /$2/ in $WORKDIR/$1.log" >&2; return 1
}

# stop_testpmd <name>: SIGINT makes testpmd print its final statistics and close its ports.
stop_testpmd() {
    local pid_var="PID_$1"
    kill -INT "${!pid_var}" 2>/dev/null || true
    wait "${!pid_var}" 2>/dev/null || true
}

# show_stats <name> <title>: the final statistics of a testpmd log: our ports'
# VHU lines, then the packet lines of each port's block, and of testpmd's
# "Accumulated forward statistics for all ports" block only when there are
# several ports (with one, it repeats the port's lines).
show_stats() {
    echo "=== $2 ==="
    awk '
        /VHU: .*vhost-user port/      { print; next }
        /Forward statistics for port/ { block = "port"; ports++; print; next }
        /Accumulated forward statistics for all ports/ { block = "all"; total[0] = $0; next }
        /^ *(-+|\++) *$/              { block = ""; next }
        /RX-packets|TX-packets/ {
            if (block == "port") print
            else if (block == "all") total[++n] = $0
        }
        END { if (ports > 1) for (i = 0; i <= n; i++) print total[i] }
    ' "$WORKDIR/$1.log"
}
