#!/usr/bin/env bash
# make demo: a kcpx tunnel across an impaired link between two namespaces, a bounded
# transfer through it, the throughput and the counters. Everything is removed afterwards.
#
#   [ A: client ]  tcpio send -> kcpx client :8388 ==udp, lossy link== kcpx server :4000
#                                                               [ B: server ] -> tcpio sink
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
NETNS_TAG=kxdemo
. "$top/tests/lib/netns.sh"
need_root
KCPX=$top/build/kcpx
TCPIO=$top/tests/lib/tcpio.py
SIZE=${SIZE:-$((32 << 20))}
LOSS=${LOSS:-2}
work=$(mktemp -d /tmp/kcpx-demo.XXXXXX)
on_cleanup "rm -rf $work"

netns_pair
# Loss on each receiving side (loss at a sender's egress would be retried by its stack).
for ns in "$NS_A" "$NS_B"; do
	dev=$([ "$ns" = "$NS_A" ] && echo "$IF_A" || echo "$IF_B")
	in_ns "$ns" nft -f - <<NFT
table netdev kcpxdemo {
	chain in {
		type filter hook ingress device "$dev" priority 0;
		meta l4proto udp numgen random mod 100 < $LOSS counter drop
	}
}
NFT
done
echo "link: veth $IP_A <-> $IP_B, ${LOSS}% random loss each way"

FLAGS="--crypt aes --mode fast3 --sndwnd 1024 --rcvwnd 1024 --ds 10 --ps 3 --key demo-key"
in_b python3 "$TCPIO" sink 9000 "$work" & track_pid $!
# shellcheck disable=SC2086
in_b "$KCPX" server -l :4000 -t 127.0.0.1:9000 $FLAGS --quiet 2>"$work/server.log" &
srv=$!; track_pid $srv
# shellcheck disable=SC2086
in_a "$KCPX" client -l 127.0.0.1:8388 -r "$IP_B:4000" $FLAGS --quiet 2>"$work/client.log" &
cli=$!; track_pid $cli
wait_udp_port "$NS_B" 4000
wait_tcp_port "$NS_A" 8388
wait_tcp_port "$NS_B" 9000

echo "pushing $((SIZE >> 20)) MiB through the tunnel (client -> server)..."
t0=$(date +%s%N)
sent=$(in_a timeout 120 python3 "$TCPIO" send 127.0.0.1 8388 "$SIZE" 1)
for _ in $(seq 1 100); do [ -e "$work/0.sha" ] && break; sleep 0.1; done
t1=$(date +%s%N)
read -r got gotn <"$work/0.sha" || true
ms=$(((t1 - t0) / 1000000))
echo "  sha256 sent     $sent"
echo "  sha256 received $got ($gotn bytes)"
[ "$sent" = "$got" ] && echo "  data intact" || echo "  DATA MISMATCH"
awk -v b="$SIZE" -v ms="$ms" 'BEGIN { printf "  throughput: %.1f Mbit/s (%.2f s)\n", b * 8 / ms / 1000, ms / 1000 }'

echo
echo "client counters (SIGUSR1):"
kill -USR1 $cli; sleep 0.3
sed -n '/BytesSent\|kcpx: tx\|session/p' "$work/client.log" | tail -30
echo
echo "server counters (SIGUSR1):"
kill -USR1 $srv; sleep 0.3
sed -n '/BytesSent\|kcpx: tx\|session/p' "$work/server.log" | tail -30
[ "$sent" = "$got" ]
