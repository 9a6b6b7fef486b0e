#!/usr/bin/env bash
# A `kcpx up` client with one engine per RX queue (the default on a 2-queue veth with 2
# cores, --threads 2 on 1 core).
#
#   [ A ] tcpio multi -> kcpx up $IF_A client   ==udp==>  $IF_B  kcpx server :4113 [ B ]
#         $IP_A          127.0.0.1:8493          veth      plain UDP  -> tcpio echo :9113
#                        --threads 2 --conn 8    2 rx/tx
#                        queue 0: XDP -> AF_XDP -> thread 0 (its sessions' ports)
#                        queue 1: XDP -> AF_XDP -> thread 1 (its sessions' ports)
#
# Each client session has a UDP port of its own on the core of the thread that opened it;
# the server's answers reach whichever RX queue of $IF_A the server's TX queue names (a
# veth's rule), so a core hands another's datagrams over (io/xsk.c). A veth has no RSS key:
# the client says once that its ports are the kernel's (on a NIC with one it picks them
# by the Toeplitz hash, core/rss.h, tested in test_rss).
#
#   step      what happens                                   checks
#   lone      $IF_B sends on one TX queue (ethtool -L): the  256 KiB echoed; when thread 1
#             first connection's answers all reach queue 0   took it, thread 0 (no session)
#             (thread 0's), whichever thread opened it        handed its answers over
#   spread    connections until both client threads hold a   `kcpx status`: each thread holds
#             session (the kernel spreads accepted TCP        sessions
#             connections over the threads' listeners)
#   echo      16 streams x 512 KiB echoed at once             every byte back, in order
#   handover  $IF_B keeps one TX queue (ethtool -L): every   thread 1 receives datagrams from
#             answer now reaches queue 0, thread 1's          thread 0's queue; 16 streams
#             sessions' too                                   echoed intact
#   stats     `kcpx stats $IF_A` (the pins)                  queue 0 received, queue 1 sent
#   stop      SIGTERM                                        exit 0 within 20 s, no XDP program
#                                                            on $IF_A, no pins left, no
#                                                            syscall refused (seccomp)
set -eu
NETNS_TAG=kxc$$
. "$(dirname "$0")/../lib/netns.sh"
work_dir xdpqc
FLAGS="--key queues-client-selftest --crypt aes --mode fast3 --sndwnd 1024 --rcvwnd 1024 --quiet"
fail=0
THREADS=""
[ "$(nproc)" -ge 2 ] || THREADS="--threads 2"

bpffs_mount
NETNS_QUEUES=2 netns_pair
on_cleanup "in_a $KCPX down $IF_A"
in_b python3 "$TCPIO" echo 9113 & track_pid $!
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l :4113 -t 127.0.0.1:9113 $FLAGS \
	--log "$work/server.log" & track_pid $!
wait_udp_port "$NS_B" 4113 20
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" up "$IF_A" --xdp-mode native client -l 127.0.0.1:8493 \
	-r "$IP_B:4113" $THREADS --conn 8 $FLAGS --log "$work/client.log" & cpid=$!
track_pid $cpid
wait_tcp_port "$NS_A" 8493 20
# logged once the engines run, after the ports opened
wait_log "$work/client.log" "2 threads" 20 || { echo "FAIL: the client did not start 2 threads"; fail=1; }
[ "$(grep -c "no RSS key to read.*client ports are the kernel's" "$work/client.log")" = 1 ] ||
	{ echo "FAIL: the client did not say once that a veth has no RSS key"; fail=1; }

status() { kcpx_status "$cpid" 2>/dev/null; }
thread_sessions() { status | sed -n "s/^  thread $1: \([0-9]*\) sessions.*/\1/p"; }
from_others() {
	status | sed -n "s/^  $IF_A thread $1: af_xdp datagrams from other threads' queues \([0-9]*\),.*/\1/p"
}
# echo_round N: N streams of 512 KiB at once, each echoed back whole (tcpio multi)
echo_round() {
	in_a timeout 120 python3 "$TCPIO" multi 127.0.0.1 8493 "$1" $((512 << 10)) >"$work/multi" 2>&1
}

echo "lone: the first session, with $IF_B sending on one TX queue (the answers on queue 0)"
# thread 1 opens it half the time: then thread 0 holds no session, and still has to take
# queue 0's datagrams off and hand them over (before, its rings went unread)
if in_b ethtool -L "$IF_B" tx 1 >"$work/ethtool" 2>&1; then
	if in_a timeout 60 python3 "$TCPIO" multi 127.0.0.1 8493 1 $((256 << 10)) >"$work/multi" 2>&1; then
		if [ "$(thread_sessions 1)" -ge 1 ] 2>/dev/null; then
			echo "  thread 1 holds it, thread 0 (no session) handed $(from_others 1) datagrams over"
			[ "$(from_others 1)" -gt 0 ] 2>/dev/null ||
				{ echo "FAIL: lone: thread 1's answers were not handed over"; fail=1; }
		else
			echo "  thread 0 holds it (a thread without sessions was not exercised this run)"
		fi
	else
		echo "FAIL: lone: $(cat "$work/multi")"
		fail=1
	fi
	in_b ethtool -L "$IF_B" tx 2 >/dev/null 2>&1 || true
else
	echo "FAIL: ethtool -L $IF_B tx 1: $(cat "$work/ethtool")"
	fail=1
fi

echo "spread: connections until both client threads hold a session"
spread_ok=0
for _ in $(seq 1 40); do
	in_a timeout 10 python3 "$TCPIO" multi 127.0.0.1 8493 1 1024 >/dev/null 2>&1 || true
	if [ "$(thread_sessions 0)" -ge 1 ] 2>/dev/null && [ "$(thread_sessions 1)" -ge 1 ] 2>/dev/null; then
		spread_ok=1
		break
	fi
done
if [ "$spread_ok" = 1 ]; then
	echo "  thread 0: $(thread_sessions 0) sessions, thread 1: $(thread_sessions 1)"
else
	echo "FAIL: the sessions did not spread over both client threads"
	status | sed 's/^/  | /'
	fail=1
fi

echo "echo: 16 streams x 512 KiB at once through both engines"
if echo_round 16; then
	echo "  $(cat "$work/multi")"
else
	echo "FAIL: echo: $(cat "$work/multi")"
	fail=1
fi

echo "handover: $IF_B sends on one TX queue, so queue 0 gets thread 1's answers"
h1=$(from_others 1)
if in_b ethtool -L "$IF_B" tx 1 >"$work/ethtool" 2>&1; then
	# which thread a stream lands on is the kernel's choice: rounds until one reached
	# thread 1 (16 streams all on thread 0: 1 in 65536), bounded
	moved=0
	for round in 1 2 3; do
		if ! echo_round 16; then
			echo "FAIL: handover round $round: $(cat "$work/multi")"
			fail=1
			break
		fi
		[ "$(from_others 1)" -gt "${h1:-0}" ] 2>/dev/null && { moved=1; break; }
	done
	echo "  $(cat "$work/multi")"
	echo "  thread 1 took $(( $(from_others 1) - ${h1:-0} )) datagrams from queue 0"
	[ "$moved" = 1 ] || { echo "FAIL: handover: thread 1 took nothing from thread 0's queue"; fail=1; }
	in_b ethtool -L "$IF_B" tx 2 >/dev/null 2>&1 || true
else
	echo "FAIL: ethtool -L $IF_B tx 1: $(cat "$work/ethtool")"
	fail=1
fi
status >"$work/status" || true

echo "stats: per-queue figures from the pins"
# the daemon publishes them once a second: wait for queue 0's answers and queue 1's
# sends (thread 1's sessions) to show, bounded
qstat() { in_a "$KCPX" stats "$IF_A" 2>/dev/null | awk -v f="$1" '$1 == f { print $2 }'; }
for _ in $(seq 1 300); do
	[ "$(qstat q0_rx_packets)" -gt 0 ] 2>/dev/null && [ "$(qstat q1_tx_packets)" -gt 0 ] 2>/dev/null && break
	sleep 0.1
done
echo "  queue 0 in $(qstat q0_rx_packets), queue 1 out $(qstat q1_tx_packets)"
[ "$(qstat q0_rx_packets)" -gt 0 ] 2>/dev/null || { echo "FAIL: kcpx stats: no q0_rx_packets"; fail=1; }
[ "$(qstat q1_tx_packets)" -gt 0 ] 2>/dev/null || { echo "FAIL: kcpx stats: no q1_tx_packets"; fail=1; }

echo "stop: SIGTERM"
stop_up client "$cpid" "$NS_A" "$IF_A" "$work/client.log" || fail=1

if [ "$fail" != 0 ]; then
	echo "--- client status"; sed 's/^/  | /' "$work/status"
	echo "--- client log"; tail -20 "$work/client.log"
	echo "--- server log"; tail -20 "$work/server.log"
	exit 1
fi
echo "PASS"
