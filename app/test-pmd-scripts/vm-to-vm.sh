#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# VM to VM: one testpmd with two eth_vhost ports forwarding to each other,
# each port the vhost-user back end of a QEMU virtual machine you start
# yourself. The guests' TSO frames cross whole (whole-frames.cmds: LRO and
# checksum offloads, csum forwarding engine; README, "VM to VM with TSO").
# Prints the QEMU options for each VM and the ports' link events, runs until
# Ctrl-C (or for DURATION seconds), then prints the statistics. Give the
# guests addresses in one subnet and they talk.
# Environment: QUEUES (queue pairs per port, default 2), MEM (guest memory,
#              default 1G), DURATION (seconds, default: until Ctrl-C).
set -euo pipefail
source "$(dirname "$0")/common.sh"
QUEUES=${QUEUES:-2}
MEM=${MEM:-1G}

start_testpmd host -l 0,1 "${EAL_COMMON[@]}" --file-prefix=vhu-vm2vm -d "$VHU_PMD" \
    --vdev "eth_vhost0,iface=$WORKDIR/vm0.sock,queues=$QUEUES" \
    --vdev "eth_vhost1,iface=$WORKDIR/vm1.sock,queues=$QUEUES" \
    -- -a --rxq="$QUEUES" --txq="$QUEUES" --nb-cores=1 \
    --cmdline-file="$(dirname "$0")/whole-frames.cmds"
wait_for_file "$WORKDIR/vm1.sock" 20

# Guest memory must be shared with testpmd (memfd, share=on). With several
# queue pairs: mq=on, and an MSI-X vector per ring plus config and control.
nic=""
[ "$QUEUES" -gt 1 ] && nic=",mq=on,vectors=$((2 * QUEUES + 2))"
for vm in 0 1; do
    cat <<EOF

VM $vm (add its disk or -kernel/-initrd):
  qemu-system-x86_64 -accel kvm -cpu host -smp $QUEUES -m $MEM \\
    -object memory-backend-memfd,id=mem,size=$MEM,share=on -numa node,memdev=mem \\
    -chardev socket,id=c0,path=$WORKDIR/vm$vm.sock \\
    -netdev vhost-user,id=n0,chardev=c0,queues=$QUEUES \\
    -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:0$vm$nic
EOF
done
cat <<EOF

Without KVM (-accel tcg) QEMU 7.2 crashes starting vhost-user with MSI-X:
use vectors=0 on -device. A guest with fewer vCPUs than $QUEUES queue pairs
uses them all after: ethtool -L eth0 combined $QUEUES

testpmd forwards eth_vhost0 <-> eth_vhost1, TSO frames whole (log: $WORKDIR/host.log).
EOF

# the ports' events as they happen; tail ends with testpmd
tail -n +1 -f --pid="$PID_host" "$WORKDIR/host.log" | grep --line-buffered "VHU: " &
if [ -n "${DURATION:-}" ]; then
    sleep "$DURATION"
else
    echo "Ctrl-C to stop."
    trap : INT   # Ctrl-C (testpmd gets it too) ends the wait, then the statistics
    sleep infinity &
    wait $! || kill $! 2>/dev/null || true
fi
stop_testpmd host
show_stats host "our testpmd: eth_vhost0 <-> eth_vhost1"
