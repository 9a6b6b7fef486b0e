#!/usr/bin/env bash
# XDP drops tunnel datagrams whose source is one of the host's own addresses, also one
# added after `kcpx up` started, and takes them again once the address is gone
# (RTM_NEWADDR/RTM_DELADDR, io/ifaddr.c). A holds the same extra addresses as B and sends
# from them, as a forger would.
#
#   [ $NS_A ]                                      [ $NS_B ]
#   $IF_A 10.N.0.1, .8, .9 ------- veth ------- $IF_B 10.N.0.2, .8 (at start), .9 (later)
#   one datagram at a time from .8 or .9           kcpx up server :4000 (drop_martian,
#                                                  steered in kcpx_xdp_stats)
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir xdpmart
[ -x "$KCPX" ] || { echo "missing $KCPX: run make first" >&2; exit 1; }
PORT=4000
export LIBXDP_SKIP_DISPATCHER=1

fail() {
	echo "FAIL: $*" >&2
	tail -20 "$work/server.log" >&2 || true
	exit 1
}

bpffs_mount
netns_pair
PIN=/sys/fs/bpf/kcpx/$IF_B
on_cleanup "in_b $KCPX down $IF_B >/dev/null 2>&1; rmdir /sys/fs/bpf/kcpx 2>/dev/null"
NET=${IP_A%.*}
OWN=$NET.8   # B's from the start
LATER=$NET.9 # B's after kcpx up started
in_a ip addr add "$OWN/32" dev "$IF_A"
in_a ip addr add "$LATER/32" dev "$IF_A"
# A must not ask B who has IP_B from an address B holds itself
mac_b=$(ip -n "$NS_B" -br link show "$IF_B" | awk '{ print $3 }')
in_a ip neigh replace "$IP_B" lladdr "$mac_b" dev "$IF_A" nud permanent
in_b ip addr add "$OWN/32" dev "$IF_B"

stat_of() { # FIELD of kcpx_xdp_stats, summed over CPUs
	bpftool map dump pinned "$PIN/kcpx_xdp_stats" | awk -F'[:,]' -v f="\"$1\"" '
		$1 ~ f { s += $2 } END { print s + 0 }'
}

passed() { # tunnel datagrams XDP let through: to an AF_XDP socket or, without one, the kernel
	echo $(($(stat_of steered) + $(stat_of pass_no_xsk)))
}

# outcome SRC: one datagram from SRC to the tunnel port; prints "martian" or "steered",
# whichever counter moved (nothing else sends to that port)
outcome() {
	local m0 s0 m s
	m0=$(stat_of drop_martian)
	s0=$(passed)
	in_a python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
s.sendto(bytes(100), (sys.argv[2], int(sys.argv[3])))
' "$1" "$IP_B" $PORT
	for _ in $(seq 300); do
		m=$(stat_of drop_martian)
		s=$(passed)
		[ "$m" -gt "$m0" ] && { echo martian; return; }
		[ "$s" -gt "$s0" ] && { echo steered; return; }
		sleep 0.05
	done
	echo none
}

# until_outcome SRC WANT: send until one datagram from SRC has outcome WANT (the daemon
# reads the addresses again within a second of a change); 30 s at most
until_outcome() {
	local o
	for _ in $(seq 60); do
		o=$(outcome "$1")
		[ "$o" = "$2" ] && return 0
		[ "$o" = none ] && fail "a datagram from $1 reached neither counter"
		sleep 0.5
	done
	fail "datagrams from $1 are still $o, not $2, 30 s after the change"
}

# nsenter execs kcpx: $! is the daemon itself
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" server -l ":$PORT" -t 127.0.0.1:9 \
	--key martians --log "$work/server.log" &
up=$!
track_pid $up
wait_log "$work/server.log" "listening" 30 || fail "kcpx up did not start"
grep -q "(af_xdp)" "$work/server.log" || fail "the server is not on AF_XDP"

[ "$(outcome "$IP_A")" = steered ] || fail "an ordinary source was not steered"
[ "$(outcome "$OWN")" = martian ] || fail "B's own address (from the start) is not a martian source"
[ "$(outcome "$LATER")" = steered ] || fail "$LATER is not B's yet, but was dropped"
in_b ip addr add "$LATER/32" dev "$IF_B"
until_outcome "$LATER" martian
echo "  an address added after start: dropped as a martian source"
in_b ip addr del "$LATER/32" dev "$IF_B"
until_outcome "$LATER" steered
echo "  ... and taken again once deleted"
[ "$(outcome "$OWN")" = martian ] || fail "the address of the start fell off the list"
grep -q "host addresses: " "$work/server.log" || fail "the list was not logged"
r=0
stop_up "kcpx up server" $up "$NS_B" "$IF_B" "$work/server.log" || r=1
[ $r = 0 ] || fail "kcpx up did not stop cleanly"
echo "PASS"
