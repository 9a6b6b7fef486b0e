#!/usr/bin/env bash
# UDP echoed through the AF_XDP backend between two namespaces, in native and skb XDP
# mode, over IPv4 and IPv6; then the echo rate of AF_XDP against a plain UDP socket.
#
#   [ $NS_A ]                                      [ $NS_B ]
#   $IF_A 10.N.0.1, fd00:N::1 ---- veth ---- $IF_B 10.N.0.2, fd00:N::2  (2 queues)
#   python checker, blast                           test_xsk echo: XDP steer -> AF_XDP
#                                                   socket per queue -> echo -> AF_XDP TX
#
# KCPX_ECHO_SECS sets the length of each rate run (default 3).
set -eu
cd "$(dirname "$0")/../.."
. tests/lib/netns.sh
need_root

TOOL=$PWD/build/tests/bpf/test_xsk
KCPX=$PWD/build/kcpx
PORT=4000
SECS=${KCPX_ECHO_SECS:-3}
[ -x "$TOOL" ] || { echo "missing $TOOL: run make first" >&2; exit 1; }
export LIBXDP_SKIP_DISPATCHER=1

fail() {
	echo "FAIL: $*" >&2
	[ -n "${ECHO_LOG:-}" ] && [ -f "$ECHO_LOG" ] && sed 's/^/  echo| /' "$ECHO_LOG" >&2
	exit 1
}

bpffs_mount
NETNS_QUEUES=2 netns_pair
IP6_A=fd00:$_netns_n::1
IP6_B=fd00:$_netns_n::2
ip -n "$NS_A" addr add "$IP6_A/64" dev "$IF_A" nodad
ip -n "$NS_B" addr add "$IP6_B/64" dev "$IF_B" nodad
ECHO_LOG=$(mktemp /tmp/kx-echo.XXXXXX)
on_cleanup "in_b $KCPX down $IF_B; rm -f $ECHO_LOG; rmdir /sys/fs/bpf/kcpx"

ECHO_PID=
start_echo() { # ADDR:PORT [tool flags]: echo server in B, until stop_echo
	: >"$ECHO_LOG"
	nsenter --net=/run/netns/"$NS_B" "$TOOL" echo "$IF_B" --bind "$@" --secs 0 \
		>"$ECHO_LOG" 2>&1 &
	ECHO_PID=$!
	track_pid $ECHO_PID
	for _ in $(seq 300); do
		grep -q "^echo on" "$ECHO_LOG" && return 0
		kill -0 $ECHO_PID 2>/dev/null || break
		sleep 0.1
	done
	fail "echo server did not start"
}

stop_echo() {
	kill -TERM $ECHO_PID
	wait $ECHO_PID || fail "echo server failed"
	sed 's/^/  echo| /' "$ECHO_LOG"
}

check_echo() { # ADDR FAMILY: 300 datagrams of every size, each echoed intact
	in_a python3 -c '
import socket, sys, os
fam = socket.AF_INET6 if sys.argv[2] == "6" else socket.AF_INET
top = 1452 if fam == socket.AF_INET6 else 1472
s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(2)
s.connect((sys.argv[1], int(sys.argv[3])))
prev = None
for i in range(300):
    n = 1 + (i * 97) % top
    d = os.urandom(n)
    r = None
    for attempt in range(5):
        s.send(d)
        try:
            # an echo later than the timeout comes back twice: skip the late copy of
            # the datagram before (a busy machine delays; it does not corrupt)
            r = s.recv(2048)
            while r == prev:
                r = s.recv(2048)
            break
        except socket.timeout:
            r = None
    prev = d
    if r != d:
        print("datagram %d (%d bytes) came back %s" % (i, n, "wrong" if r else "never"))
        sys.exit(1)
print("300 datagrams echoed intact over IPv%s" % sys.argv[2])
' "$1" "$2" $PORT
}

blast() { # ADDR:PORT -> prints the pps line
	in_a "$TOOL" blast "$1" --secs "$SECS" --size 64 --window 256
}

declare -A rate cpu
for mode in native skb; do
	echo "== AF_XDP, $mode mode"
	start_echo "$IP_B:$PORT" --mode $mode
	grep -q "xdp=$mode" "$ECHO_LOG" || fail "not in $mode mode"
	grep -q "2 queues" "$ECHO_LOG" || fail "not one socket per queue"
	check_echo "$IP_B" 4 || fail "IPv4 echo ($mode)"
	stop_echo
	grep -Eq "rx_bad 0 " "$ECHO_LOG" || fail "frames rejected"
	ip -n "$NS_B" link show "$IF_B" | grep -q "prog/xdp" && fail "XDP left behind"

	start_echo "[$IP6_B]:$PORT" --mode $mode
	check_echo "$IP6_B" 6 || fail "IPv6 echo ($mode)"
	# the steering counter is live in the pinned map while the backend runs
	steered=$(bpftool map dump pinned /sys/fs/bpf/kcpx/"$IF_B"/kcpx_xdp_stats |
		awk -F'[:,]' '/"steered"/ { s += $2 } END { print s + 0 }')
	[ "$steered" -ge 300 ] || fail "steered=$steered, want >= 300"
	stop_echo

	start_echo "$IP_B:$PORT" --mode $mode
	line=$(blast "$IP_B:$PORT") || fail "blast: $line"
	echo "$line"
	rate[$mode]=$(echo "$line" | sed -n 's/.* \([0-9]*\) pps echoed.*/\1/p')
	stop_echo
	cpu[$mode]=$(sed -n 's|.*: \([0-9.]*\) us/datagram.*|\1|p' "$ECHO_LOG")
done

echo "== plain UDP socket"
start_echo "$IP_B:$PORT" --udp
check_echo "$IP_B" 4 || fail "IPv4 echo (udp)"
line=$(blast "$IP_B:$PORT") || fail "blast: $line"
echo "$line"
rate[udp]=$(echo "$line" | sed -n 's/.* \([0-9]*\) pps echoed.*/\1/p')
stop_echo
cpu[udp]=$(sed -n 's|.*: \([0-9.]*\) us/datagram.*|\1|p' "$ECHO_LOG")

# The rate is bounded by the one-socket generator in A sharing the two CPUs; the echo
# process's CPU time per datagram is the backend's own cost.
printf 'echo rate, 64-byte datagrams, %ss each:\n' "$SECS"
for b in native skb udp; do
	printf '  %-7s %8s pps  %6s us CPU/datagram in the echo process\n' "$b" "${rate[$b]}" \
		"${cpu[$b]}"
done
echo "PASS"
