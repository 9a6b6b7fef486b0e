#!/usr/bin/env bash
# A `kcpx up` client whose neighbour entry for the server is missing (a new next hop, or
# one the kernel forgot) sends its whole session the same way: it resolves the next hop
# before the first INIT. Were the INIT to leave through the kernel socket beside its
# AF_XDP port (no MAC to build a frame with) and the rest through an AF_XDP queue, a veth
# would hand them to two RX queues of the server's (the peer's RX queue is the sender's
# TX queue): the session opens on the engine the INIT reached and the other engine hands
# it every DATA.
#
#   [ A ] pace try -> kcpx up $IF_A client ==== veth, 2 queues ==== kcpx up $IF_B server [ B ]
#         127.0.0.1:8410  --threads 1 (neighbours flushed)          :4010, 2 engines
#                                                                    -> pace source :9010
#   step     what happens                                  checks
#   trial N  neighbour tables flushed at both ends, the    a connection carries data; the
#            client started, one connection, 256 KiB      client sent nothing through its
#                                                          kernel socket (tx_kernel 0); the
#                                                          server's engines handed nothing
#                                                          over
# Every wait is for an event (a port, a counter, bytes received) and bounded.
set -eu
NETNS_TAG=kfi$$
. "$(dirname "$0")/../lib/netns.sh"
work_dir up-first-init
PACE=$NETNS_TOP/tests/lib/pace.py
FLAGS="--key up-first-init-selftest --crypt aes --mode fast3 --proto kcpx --quiet"
fail=0

THREADS=""
[ "$(nproc)" -ge 2 ] || THREADS="--threads 2"
bpffs_mount
on_cleanup "in_a $KCPX down $IF_A >/dev/null 2>&1; in_b $KCPX down $IF_B >/dev/null 2>&1; true"
NETNS_QUEUES=2 netns_pair
in_b python3 "$PACE" source 9010 $((256 << 10)) $((8 << 20)) & track_pid $!
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" server -l :4010 -t 127.0.0.1:9010 \
	$THREADS $FLAGS --log "$work/server.log" & spid=$!
track_pid $spid
wait_udp_port "$NS_B" 4010 20
wait_tcp_port "$NS_B" 9010 20
wait_log "$work/server.log" "2 threads" 20 || { echo "FAIL: the server did not start 2 engines"; fail=1; }

handed() {
	kcpx_status "$spid" | sed -n "s/^  thread $1: .*handed to another thread \([0-9]*\),.*/\1/p"
}
# the client's pinned AF_XDP counter $1 (published once a second)
xsk_stat() {
	in_a "$KCPX" stats "$IF_A" --json 2>/dev/null | python3 -c \
		'import json,sys; print(json.load(sys.stdin)["counters"]["kcpx_xsk_stats"][sys.argv[1]])' \
		"$1" 2>/dev/null || echo 0
}

for t in 1 2 3; do
	in_a ip neigh flush dev "$IF_A"
	in_b ip neigh flush dev "$IF_B"
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_A" "$KCPX" up "$IF_A" client -l 127.0.0.1:8410 \
		-r "$IP_B:4010" --conn 1 --threads 1 $FLAGS --log "$work/client$t.log" & cpid=$!
	track_pid $cpid
	wait_tcp_port "$NS_A" 8410 20
	h0=$(($(handed 0) + $(handed 1)))
	if ms=$(in_a python3 "$PACE" try 127.0.0.1 8410 30) &&
		in_a timeout 30 python3 "$PACE" recv 127.0.0.1 8410 "$work/dl$t" >/dev/null; then
		:
	else
		echo "FAIL: trial $t: no data through the client"
		fail=1
	fi
	# a publication after the session's AF_XDP datagrams: the INIT came before them
	for _ in $(seq 1 100); do
		[ "$(xsk_stat tx_packets)" -gt 0 ] && break
		sleep 0.1
	done
	tk=$(xsk_stat tx_kernel)
	h1=$(($(handed 0) + $(handed 1)))
	echo "  trial $t: first data after ${ms:-?} ms; client: $(xsk_stat tx_packets) datagrams" \
		"by AF_XDP, $tk by its kernel socket; server engines handed $((h1 - h0)) over"
	[ "$tk" = 0 ] || { echo "FAIL: trial $t: the client sent $tk datagrams through its kernel socket"; fail=1; }
	[ "$h1" = "$h0" ] || { echo "FAIL: trial $t: the server's engines handed $((h1 - h0)) datagrams over"; fail=1; }
	kill -TERM "$cpid"
	for _ in $(seq 1 200); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
	wait "$cpid" 2>/dev/null || true
done

kill -0 "$spid" 2>/dev/null || { echo "FAIL: the server died"; fail=1; }
[ "$fail" -eq 0 ] || tail -n 20 "$work"/*.log
exit $fail
