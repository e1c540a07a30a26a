#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Live migration of a QEMU guest between two eth_vhost ports of one testpmd,
# with a peer guest on a third port: eth_vhost0 is the source guest's NIC,
# eth_vhost1 the destination's, eth_vhost2 the peer's. testpmd forwards (io)
# between the peer and the source port; once the destination port's link
# comes up (the migration completed), it forwards to the destination port.
# Prints the QEMU options for the three guests and the migration commands,
# shows the ports' events, runs until Ctrl-C (or DURATION seconds), then
# prints the statistics.
# Environment: MEM (guest memory, default 1G), DURATION (seconds, default:
#              until Ctrl-C).
set -euo pipefail
source "$(dirname "$0")/common.sh"
MEM=${MEM:-1G}

start_testpmd host -l 0,1 "${EAL_COMMON[@]}" --file-prefix=vhu-migration -d "$VHU_PMD" \
    --vdev "eth_vhost0,iface=$WORKDIR/src.sock" --vdev "eth_vhost1,iface=$WORKDIR/dst.sock" \
    --vdev "eth_vhost2,iface=$WORKDIR/peer.sock" -- -i --forward-mode=io --nb-cores=1
wait_for_file "$WORKDIR/peer.sock" 20

# testpmd_cmd <command>: a command line to the interactive testpmd
testpmd_cmd() {
    echo "$1" > "$WORKDIR/host.stdin"
}
testpmd_cmd "set portlist 0,2"
testpmd_cmd "start"

guest="-m $MEM -object memory-backend-memfd,id=mem,size=$MEM,share=on -numa node,memdev=mem"
nic="-netdev vhost-user,id=n0,chardev=c0 -device virtio-net-pci,netdev=n0"
cat <<EOF

Guest memory must be shared with testpmd (memfd, share=on), on both sides of
the migration; add the guests' disks or -kernel/-initrd and -accel kvm (or
-accel tcg with vectors=0 on -device).

Source guest, with a monitor:
  qemu-system-x86_64 $guest \\
    -chardev socket,id=c0,path=$WORKDIR/src.sock $nic,mac=52:54:00:00:00:0a \\
    -monitor unix:$WORKDIR/src.mon,server=on,wait=off
Destination (the same guest configuration, its own socket):
  qemu-system-x86_64 $guest \\
    -chardev socket,id=c0,path=$WORKDIR/dst.sock $nic,mac=52:54:00:00:00:0a \\
    -incoming tcp:127.0.0.1:4444
Peer guest:
  qemu-system-x86_64 $guest \\
    -chardev socket,id=c0,path=$WORKDIR/peer.sock $nic,mac=52:54:00:00:00:0b

Then, in the source's monitor (socat - UNIX-CONNECT:$WORKDIR/src.mon):
  (qemu) migrate -d tcp:127.0.0.1:4444
  (qemu) info migrate
With guest_announce=off on both guests' -device, eth_vhost1 announces the
guest with a RARP frame once it arrives.

testpmd forwards eth_vhost2 <-> eth_vhost0 (log: $WORKDIR/host.log).
EOF

# the ports' events as they happen; tail ends with testpmd
tail -n +1 -f --pid="$PID_host" "$WORKDIR/host.log" | grep --line-buffered "VHU: " &

# switch the peer over to the destination port when its link comes up
(
    tail -n +1 -f --pid="$PID_host" "$WORKDIR/host.log" | grep -q "eth_vhost1: link up" || exit 0
    testpmd_cmd "stop"
    testpmd_cmd "set portlist 1,2"
    testpmd_cmd "start"
    echo "the destination is up: testpmd forwards eth_vhost2 <-> eth_vhost1"
) &

if [ -n "${DURATION:-}" ]; then
    sleep "$DURATION"
else
    echo "Ctrl-C to stop."
    trap : INT   # Ctrl-C (testpmd gets it too) ends the wait, then the statistics
    sleep infinity &
    wait $! || kill $! 2>/dev/null || true
fi
testpmd_cmd "stop"
stop_testpmd host
show_stats host "our testpmd: eth_vhost2 <-> eth_vhost0, then eth_vhost1"
