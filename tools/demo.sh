#!/usr/bin/env bash
# make demo: a kcpx tunnel over XDP/AF_XDP across an emulated WAN (delay + loss), a
# bounded transfer through it, the throughput, and the counters. Everything it makes is
# removed afterwards, also on failure or Ctrl-C.
#
#   [ A: client ] kcpx up (XDP) ==veth== [ M: linkem 20 ms + 1 % loss each way ] ==veth== [ B: server ] kcpx up (XDP)
#     tcpio send -> 127.0.0.1:8388                                                        -> tcpio sink :9000
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
WAN_TAG=kxdemo
. "$top/tools/lib/wan.sh"
need_root
KCPX=$top/build/kcpx
TCPIO=$top/tests/lib/tcpio.py
SIZE=${SIZE:-$((32 << 20))}
DELAY=${DELAY:-20}
LOSS=${LOSS:-1}
FLAGS=${FLAGS:---crypt aes --key demo-key --mode fast3 --sndwnd 1024 --rcvwnd 1024 --ds 10 --ps 3 --quiet}
work=$(mktemp -d /tmp/kcpx-demo.XXXXXX)
on_cleanup "rm -rf $work"

bpffs_mount
wan_up 0
wan_linkem 0 --both "delay=$DELAY,loss=$LOSS" -s 1
NA=$(wan_ns 0 a) NB=$(wan_ns 0 b) IA=$(wan_if 0 a) IB=$(wan_if 0 b)
IP_B=$(wan_ip 0 b)
on_cleanup "in_ns $NA $KCPX down $IA; in_ns $NB $KCPX down $IB"
echo "link: $(wan_ip 0 a) <-> $IP_B, ${DELAY} ms one way (RTT $((2 * DELAY)) ms), ${LOSS}% loss each way (linkem)"

in_ns "$NB" python3 "$TCPIO" sink 9000 "$work" & track_pid $!
# shellcheck disable=SC2086
in_ns "$NB" "$KCPX" up "$IB" server -l :4000 -t 127.0.0.1:9000 $FLAGS 2>"$work/server.log" &
srv=$!; track_pid $srv
# shellcheck disable=SC2086
in_ns "$NA" "$KCPX" up "$IA" client -l 127.0.0.1:8388 -r "$IP_B:4000" $FLAGS 2>"$work/client.log" &
cli=$!; track_pid $cli
wait_udp_port "$NB" 4000
wait_tcp_port "$NA" 8388
wait_tcp_port "$NB" 9000
grep -h "XDP in" "$work/server.log" "$work/client.log" | sed 's/^/  /' || true

echo "pushing $((SIZE >> 20)) MiB through the tunnel (client -> server)..."
t0=$(date +%s%N)
sent=$(in_ns "$NA" timeout 120 python3 "$TCPIO" send 127.0.0.1 8388 "$SIZE" 1)
for _ in $(seq 1 100); do [ -e "$work/0.sha" ] && break; sleep 0.1; done
t1=$(date +%s%N)
read -r got gotn <"$work/0.sha" || true
ms=$(((t1 - t0) / 1000000))
echo "  sha256 sent     $sent"
echo "  sha256 received $got (${gotn:-0} bytes)"
if [ "$sent" = "$got" ]; then echo "  data intact"; else echo "  DATA MISMATCH"; fi
awk -v b="$SIZE" -v ms="$ms" 'BEGIN { printf "  goodput: %.1f Mbit/s (%.2f s)\n", b * 8 / ms / 1000, ms / 1000 }'

echo
echo "== kcpx status (both ends)"
"$KCPX" status | sed 's/^/  /'
echo
echo "== kcpx stats $IB (server side: XDP, AF_XDP and SNMP counters from the pinned maps)"
in_ns "$NB" "$KCPX" stats "$IB" | sed 's/^/  /'
echo
echo "== linkem"
wan_stats 0 | sed 's/^/  /'
[ "$sent" = "$got" ]
