#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# PVP (physical-virtual-physical) loop with a virtio-user peer:
#   testpmd #1: our eth_vhost0 (loaded with -d), io forwarding, the port sends
#               back what it receives;
#   testpmd #2: DPDK's virtio-user PMD on the same socket, flowgen: it generates
#               traffic and counts what comes back.
# Each testpmd polls on its own CPU. Prints both sides' statistics at the end.
# Environment: DURATION (seconds, default 10), QUEUES (pairs, default 1),
#              PEER_ARGS (extra virtio-user devargs, e.g. ",mrg_rxbuf=0").
set -euo pipefail
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-10}
QUEUES=${QUEUES:-1}
SOCK=$WORKDIR/vhost0.sock

start_testpmd host -l 0,1 "${EAL_COMMON[@]}" --file-prefix=vhu-pvp-host -d "$VHU_PMD" \
    --vdev "eth_vhost0,iface=$SOCK,queues=$QUEUES" \
    -- -a --forward-mode=io --rxq="$QUEUES" --txq="$QUEUES" --nb-cores=1
wait_for_file "$SOCK" 20
start_testpmd guest -l 0,1 --main-lcore 1 "${EAL_COMMON[@]}" --file-prefix=vhu-pvp-guest \
    --vdev "net_virtio_user0,path=$SOCK,queues=$QUEUES${PEER_ARGS:-}" \
    -- -a --forward-mode=flowgen --rxq="$QUEUES" --txq="$QUEUES" --nb-cores=1

# testpmd -a prints this once forwarding has started: the peer's start-up
# (seconds: its memory, our port mapping all of it) is not part of DURATION
wait_for_log guest "Press enter to exit" 120
echo "PVP running for $DURATION s (socket $SOCK)..."
sleep "$DURATION"
stop_testpmd guest
stop_testpmd host
show_stats host "our eth_vhost0 (host side)"
show_stats guest "virtio-user peer (guest side)"
