#!/usr/bin/env bash
# `kcpx up lo server` in a namespace of its own, a `kcpx client` beside it over loopback:
# the tunnel's datagrams reach the server through XDP and AF_XDP, its answers leave through
# the kernel's socket (the kernel drops AF_XDP-sent frames on a loopback device as martian),
# 8 MiB arrive intact, and SIGTERM leaves no XDP program and no pin.
#
#   [ ns, lo only ]
#   tcpio send -> kcpx client 127.0.0.1:8388 --udp--> kcpx up lo server :4000 -> tcpio sink :9001
set -eu
NETNS_TAG=kxl$$
. "$(dirname "$0")/../lib/netns.sh"
work_dir xdplo
[ -x "$KCPX" ] || { echo "missing $KCPX: run make first" >&2; exit 1; }
SIZE=$((8 << 20))
NS=${NETNS_TAG}l
PIN=/sys/fs/bpf/kcpx/lo
bpffs_mount
# the pins are named after the interface: never touch a live `kcpx up lo` of the host's
[ -e "$PIN" ] && { echo "SKIP: $PIN exists (a kcpx up lo runs on this host)"; exit 4; }
netns_add "$NS"
on_cleanup "in_ns $NS $KCPX down lo; rmdir /sys/fs/bpf/kcpx"

fail() {
	echo "FAIL: $*" >&2
	for f in "$work"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -15 "$f"; } >&2; done
	exit 1
}
stat_of() { # MAP FIELD: the pinned counter summed over CPUs
	bpftool map dump pinned "$PIN/$1" | awk -F'[:,]' -v f="\"$2\"" '$1 ~ f { s += $2 }
		END { print s + 0 }'
}

mkdir -p "$work/sink"
in_ns "$NS" python3 "$TCPIO" sink 9001 "$work/sink" &
track_pid $!
FLAGS="--key lo-selftest --mode fast3"
# nsenter execs kcpx: $! is the daemon itself
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS" "$KCPX" up lo server -l :4000 -t 127.0.0.1:9001 $FLAGS \
	--log "$work/server.log" &
srv=$!
track_pid $srv
wait_log "$work/server.log" "listening" 20 || fail "server did not start"
grep -q "(af_xdp)" "$work/server.log" || fail "the server is not on AF_XDP"
# lo has one RX queue: the default is one engine, whatever the cores
grep -q "lo: 1 engine: one per RX queue" "$work/server.log" ||
	fail "not one engine on lo's one queue: $(grep -m1 engine "$work/server.log")"
grep -q " threads, each with" "$work/server.log" && fail "more than one thread on lo"
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS" "$KCPX" client -l 127.0.0.1:8388 -r 127.0.0.1:4000 $FLAGS \
	--log "$work/client.log" &
cli=$!
track_pid $cli
wait_tcp_port "$NS" 8388
wait_tcp_port "$NS" 9001

sent=$(in_ns "$NS" timeout 60 python3 "$TCPIO" send 127.0.0.1 8388 "$SIZE" 7) || fail "send failed"
for _ in $(seq 1 600); do [ -e "$work/sink/0.sha" ] && break; sleep 0.05; done
got=$(cut -d' ' -f1 "$work/sink/0.sha" 2>/dev/null || echo none)
[ "$sent" = "$got" ] || fail "sha256 sent $sent, received $got"
echo "  $SIZE bytes intact through kcpx up lo"

# the engine publishes its counters once a second, so a snapshot may be from the middle
# of the transfer: wait for one that has the answers too (a broken build that answers by
# AF_XDP never gets there and fails below)
for _ in $(seq 1 200); do
	rx=$(stat_of kcpx_xsk_stats rx_packets)
	txk=$(stat_of kcpx_xsk_stats tx_kernel)
	tx=$(stat_of kcpx_xsk_stats tx_packets)
	[ "$rx" -gt 100 ] && [ "$txk" -gt 10 ] && break
	sleep 0.1
done
echo "  server: AF_XDP rx $rx, tx via the kernel $txk, AF_XDP tx $tx"
[ "$rx" -gt 100 ] || fail "the server took $rx datagrams through AF_XDP"
[ "$txk" -gt 10 ] && [ "$tx" -eq 0 ] || fail "answers on loopback must leave through the kernel"

kill -TERM $cli $srv
wait $srv || fail "server did not exit cleanly"
wait $cli || true
ip -n "$NS" link show lo | grep -q "prog/xdp" && fail "XDP left on lo"
[ -e "$PIN" ] && fail "pins left in $PIN"
echo "PASS: kcpx up lo"
