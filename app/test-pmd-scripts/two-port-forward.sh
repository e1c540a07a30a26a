#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Two eth_vhost ports in one testpmd forwarding to each other (io, paired),
# each with its own virtio-user peer: peer A generates traffic (flowgen), peer
# B counts what arrives (rxonly). Three polling processes share two CPUs here,
# so expect modest rates; the point is the topology.
# Environment: DURATION (seconds, default 10).
set -euo pipefail
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-10}

start_testpmd host -l 0,1 "${EAL_COMMON[@]}" --file-prefix=vhu-2p-host -d "$VHU_PMD" \
    --vdev "eth_vhost0,iface=$WORKDIR/a.sock" --vdev "eth_vhost1,iface=$WORKDIR/b.sock" \
    -- -a --forward-mode=io --nb-cores=1
wait_for_file "$WORKDIR/b.sock" 20
start_testpmd peerb -l 0,1 --main-lcore 1 "${EAL_COMMON[@]}" --file-prefix=vhu-2p-b \
    --vdev "net_virtio_user0,path=$WORKDIR/b.sock" -- -a --forward-mode=rxonly
start_testpmd peera -l 0,1 --main-lcore 1 "${EAL_COMMON[@]}" --file-prefix=vhu-2p-a \
    --vdev "net_virtio_user0,path=$WORKDIR/a.sock" -- -a --forward-mode=flowgen

# the peers' start-up (seconds each) is not part of DURATION
wait_for_log peerb "Press enter to exit" 120
wait_for_log peera "Press enter to exit" 120
echo "forwarding for $DURATION s..."
sleep "$DURATION"
stop_testpmd peera
stop_testpmd peerb
stop_testpmd host
show_stats host "our testpmd: eth_vhost0 <-> eth_vhost1"
show_stats peera "peer A (sends)"
show_stats peerb "peer B (receives)"
