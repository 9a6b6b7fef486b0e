#!/usr/bin/env bash
# A server bound to any address (kcpx server -l :PORT, plain UDP sockets) on a host with
# two addresses: each client is answered from the address it wrote to, or its connected
# socket drops every answer (the kernel's own choice would be the route's source, $IP_B).
#
#   [ A ] pace try -> kcpx client 127.0.0.1:8395 ==udp==> $IP_B3:4005 \  kcpx server :4005 [ B ]
#         pace try -> kcpx client 127.0.0.1:8396 ==udp==> $IP_B:4005  /  -> pace source :9005
#
# Checks: a connection through each client carries data (bounded waits on events).
set -eu
NETNS_TAG=kan$$
. "$(dirname "$0")/../lib/netns.sh"
work_dir anyaddr
PACE=$NETNS_TOP/tests/lib/pace.py
FLAGS="--key anyaddr-selftest --crypt aes --mode fast3 --quiet"
fail=0

netns_pair
IP_B3=${IP_B%.*}.3
ip -n "$NS_B" addr add "$IP_B3/24" dev "$IF_B"
in_b python3 "$PACE" source 9005 $((64 << 10)) $((1 << 20)) & track_pid $!
# shellcheck disable=SC2086
in_b "$KCPX" server -l ":4005" -t 127.0.0.1:9005 $FLAGS --log "$work/server.log" &
track_pid $!
# shellcheck disable=SC2086
in_a "$KCPX" client -l 127.0.0.1:8395 -r "$IP_B3:4005" --conn 1 $FLAGS \
	--log "$work/client3.log" &
track_pid $!
# shellcheck disable=SC2086
in_a "$KCPX" client -l 127.0.0.1:8396 -r "$IP_B:4005" --conn 1 $FLAGS \
	--log "$work/client.log" &
track_pid $!
wait_udp_port "$NS_B" 4005 20
wait_tcp_port "$NS_B" 9005 20
wait_tcp_port "$NS_A" 8395 20
wait_tcp_port "$NS_A" 8396 20

check() { # check PORT SERVER-ADDRESS
	if ms=$(in_a python3 "$PACE" try 127.0.0.1 "$1" 30); then
		echo "  to $2: a connection carried data after $ms ms"
	else
		echo "FAIL: the client writing to $2 got no data"
		fail=1
	fi
}
check 8395 "$IP_B3"
check 8396 "$IP_B"

[ "$fail" -eq 0 ] || tail_logs
exit $fail
