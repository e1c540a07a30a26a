#!/bin/sh
# /init of the test guests (busybox only). Kernel command line parameters:
#   vhu.name=NAME   printed in the markers
#   vhu.ip=A.B.C.D/N  address of the virtio-net interface (none: link up only)
#   vhu.mac=MAC     which interface (default: the first ethX)
#   vhu.queues=N    ethtool -L <if> combined N when N > 1
# Then runs /etc/vhu/boot.sh if present, prints "@@READY <name>" and serves
# the host's commands on the console (see vm.py, GuestShell):
#   host:  "@@<id> <base64 of a shell script>"
#   guest: "@@BEGIN <id>", the script's output (stdout+stderr), "@@END <id> rc=<status>"
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o size=200m tmpfs /tmp

arg() {   # arg NAME: value of vhu.NAME= on the kernel command line
    for w in $(cat /proc/cmdline); do
        case "$w" in vhu.$1=*) echo "${w#vhu.$1=}"; return;; esac
    done
}
NAME=$(arg name); IP=$(arg ip); MAC=$(arg mac); QUEUES=$(arg queues)
echo "@@INIT ${NAME:-guest} $(cat /proc/uptime)"

for m in $(cat /lib/modules/load.order); do
    insmod /lib/modules/$m || echo "@@ERROR insmod $m failed"
done

IF=
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    for d in /sys/class/net/eth*; do
        [ -e "$d" ] || continue
        if [ -z "$MAC" ] || [ "$(cat $d/address)" = "$(echo $MAC | tr A-F a-f)" ]; then
            IF=${d##*/}; break
        fi
    done
    [ -n "$IF" ] && break
    sleep 0.25
done
ip link set lo up
if [ -z "$IF" ]; then
    echo "@@ERROR no virtio-net interface"; ls /sys/class/net
else
    echo "$IF" > /run/vhu-if
    if [ -n "$QUEUES" ] && [ "$QUEUES" -gt 1 ]; then
        ethtool -L "$IF" combined "$QUEUES" || echo "@@ERROR ethtool -L $IF combined $QUEUES"
    fi
    [ -n "$IP" ] && ip addr add "$IP" dev "$IF"
    ip link set "$IF" up
    # Until the kernel has seen the carrier the qdisc drops what is sent (the
    # first pings of a test would be lost): wait for operstate "up".
    for i in $(seq 150); do
        [ "$(cat /sys/class/net/$IF/operstate)" = up ] && break
        sleep 0.1
    done
    [ "$(cat /sys/class/net/$IF/operstate)" = up ] || echo "@@ERROR $IF: no carrier after 15 s"
    echo "@@NET $IF $(cat /sys/class/net/$IF/address) ${IP:-noip} queues=$(ls -d /sys/class/net/$IF/queues/tx-* | wc -l)"
fi
hostname "${NAME:-guest}"
# only errors and worse on the console from now on: keeps command output clean
echo "3 4 1 3" > /proc/sys/kernel/printk
[ -x /etc/vhu/boot.sh ] && /etc/vhu/boot.sh
# before @@READY: the host sends its first command as soon as it sees it
stty -echo 2>/dev/null
echo "@@READY ${NAME:-guest} $(cat /proc/uptime)"

while :; do
    IFS= read -r line || { sleep 1; continue; }
    case "$line" in
    @@*\ *)
        id=${line%% *}; id=${id#@@}; b64=${line#* }
        if ! printf '%s\n' "$b64" | base64 -d > /tmp/.cmd.$id 2>/dev/null; then
            echo "@@BADCMD $id"; continue
        fi
        echo "@@BEGIN $id"
        sh /tmp/.cmd.$id < /dev/null 2>&1
        echo "@@END $id rc=$?"
        rm -f /tmp/.cmd.$id
        ;;
    esac
done
