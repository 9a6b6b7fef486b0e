#!/usr/bin/env bash
# Receive drops reach the sender (issue 11, docs/CONGESTION.md "Receive drops").
#
#   [ A ] tcpio send -> kcpx client :8381 ==udp (native)== kcpx server :4001 [ B ]
#                                          (veth)          --sockbuf 4096 -> tcpio sink
#
# The server's UDP socket gets the smallest receive buffer the kernel allows (a few
# datagrams), so the client's bursts overflow it. The upload must arrive intact, the
# server must count the drops (SO_RXQ_OVFL: `rx_dropped`, the session's `rx_drops`), and
# the client must have been told of them (drop reports: its session's `peer_drops`).
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir rxdrops
SIZE=$((8 << 20))
FLAGS="--proto kcpx --nocomp --ds 0 --ps 0 --mode fast3 --sndwnd 1024 --rcvwnd 1024 --quiet"

netns_pair
in_b python3 "$TCPIO" sink 9001 "$work" &
track_pid $!
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l ":4001" -t 127.0.0.1:9001 $FLAGS \
	--sockbuf 4096 --log "$work/server.log" &
spid=$!
track_pid $spid
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8381 -r "$IP_B:4001" $FLAGS \
	--log "$work/client.log" &
cpid=$!
track_pid $cpid
wait_udp_port "$NS_B" 4001
wait_tcp_port "$NS_A" 8381
wait_tcp_port "$NS_B" 9001

fail=0
sent=$(in_a timeout 120 python3 "$TCPIO" send 127.0.0.1 8381 "$SIZE" 5)
for _ in $(seq 1 300); do [ -e "$work/0.sha" ] && break; sleep 0.1; done
got=$(cut -d' ' -f1 "$work/0.sha" 2>/dev/null || echo none)
[ "$sent" = "$got" ] || { echo "FAIL: upload sha256 differs (sent $sent, got $got)"; fail=1; }

check_rx_drops "$spid" "$cpid" "receive drops not counted or not reported" || fail=1
kcpx_status "$spid" >"$work/server.txt" 2>&1 || true
grep -q "rx dropped [1-9]" "$work/server.txt" || {
	echo "FAIL: kcpx status shows no rx dropped:"
	cat "$work/server.txt"
	fail=1
}
[ $fail = 0 ] && echo "PASS"
exit $fail
