#!/usr/bin/env bash
# A full AF_XDP RX ring's drops reach the sender (issue 11, docs/CONGESTION.md "Receive
# drops").
#
#   [ $NS_A ] tcpio send -> kcpx client (UDP) ==native== veth (1 queue) ==
#       kcpx up $IF_B server (XDP skb mode + AF_XDP) -> tcpio sink :9001 [ $NS_B ]
#
# During an upload the server is stopped (SIGSTOP) until XDP has steered more datagrams
# into its AF_XDP socket than the RX ring holds (the pinned `steered` counter, which the
# XDP program keeps while the daemon sleeps), then continued. The ring's drops
# (XDP_STATISTICS) must show as the server's `rx_dropped` and its session's `rx_drops`,
# the client must have been told (`peer_drops`), and the upload must arrive intact.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir xdprxd
SIZE=$((16 << 20))
# windows of 4096 and --cc off at the client: while the server sleeps, the client puts a
# whole window (4 x the RX ring) on the wire at once
FLAGS="--proto kcpx --nocomp --ds 0 --ps 0 --mode fast3 --sndwnd 4096 --rcvwnd 4096 --quiet"
[ -x "$KCPX" ] || { echo "missing $KCPX: run make first" >&2; exit 1; }

bpffs_mount
NETNS_QUEUES=1 netns_pair
on_cleanup "in_b $KCPX down $IF_B; rmdir /sys/fs/bpf/kcpx 2>/dev/null"

steered() {
	bpftool map dump pinned /sys/fs/bpf/kcpx/"$IF_B"/kcpx_xdp_stats 2>/dev/null |
		awk -F'[:,]' '/"steered"/ { s += $2 } END { print s + 0 }'
}

in_b python3 "$TCPIO" sink 9001 "$work" &
track_pid $!
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" --xdp-mode skb server -l :4000 \
	-t 127.0.0.1:9001 $FLAGS --log "$work/server.log" &
spid=$!
track_pid $spid
on_cleanup "kill -CONT $spid 2>/dev/null"
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8388 -r "$IP_B:4000" $FLAGS \
	--cc off --log "$work/client.log" &
cpid=$!
track_pid $cpid
wait_udp_port "$NS_B" 4000
wait_tcp_port "$NS_A" 8388
wait_tcp_port "$NS_B" 9001
ring=$(sed -n 's/.*copy mode, \([0-9]*\)+[0-9]* frames.*/\1/p' "$work/server.log" | head -1)
[ -n "$ring" ] || ring=4096

fail=0
in_a timeout 300 python3 "$TCPIO" send 127.0.0.1 8388 "$SIZE" 3 >"$work/sent" &
sender=$!
track_pid $sender
# the upload runs through AF_XDP, then the server sleeps until the ring must be full
for _ in $(seq 1 300); do [ "$(steered)" -gt 1000 ] && break; sleep 0.05; done
kill -STOP "$spid"
s0=$(steered)
for _ in $(seq 1 200); do [ "$(steered)" -gt $((s0 + ring + 64)) ] && break; sleep 0.05; done
s1=$(steered)
kill -CONT "$spid"
echo "  server stopped while XDP steered $((s1 - s0)) datagrams (RX ring: $ring)"
wait "$sender" || { echo "FAIL: upload did not finish"; fail=1; }
sent=$(cat "$work/sent")
for _ in $(seq 1 300); do [ -e "$work/0.sha" ] && break; sleep 0.1; done
got=$(cut -d' ' -f1 "$work/0.sha" 2>/dev/null || echo none)
[ "$sent" = "$got" ] || { echo "FAIL: upload sha256 differs (sent $sent, got $got)"; fail=1; }

check_rx_drops "$spid" "$cpid" "the RX ring's drops not counted or not reported" || fail=1
kill -TERM "$cpid" "$spid"
wait "$spid" || { echo "FAIL: server did not exit cleanly"; fail=1; }
[ $fail = 0 ] && { echo "PASS"; exit 0; }
for f in "$work"/*.log; do echo "== $f"; tail -15 "$f"; done
exit 1
