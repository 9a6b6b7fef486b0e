#!/usr/bin/env bash
# `kcpx up` with one engine per RX queue (the default on a 2-queue veth with 2 cores,
# --threads 2 on 1 core; docs/SCALE.md).
#
#   [ A ] tcpio -> kcpx client 127.0.0.1:8491 ==udp==> $IF_B  kcpx up server :4111 [ B ]
#         $IP_A    --conn 16 (16 UDP ports:    veth    queue 0: XDP -> AF_XDP -> thread 0
#                  the kernel spreads them     2 rx/tx queue 1: XDP -> AF_XDP -> thread 1
#                  over the veth's TX queues)  queues            -> tcpio sink :9111
#         tcpio -> kcpx client 127.0.0.1:8492 --proto kcptun --conn 16 (kcptun's format)
#
#   step      what happens                                   checks
#   spread    connections until both server threads hold a   `kcpx status`: each thread holds
#             session, thread 1 one of kcptun's format (a     sessions, each RX queue received
#             veth hands a datagram to the peer's RX queue    datagrams over AF_XDP
#             with the sender's TX queue number)
#   upload    8 MiB on each of 4 connections at once         sha256 equal on every one
#   counters  /metrics and `kcpx stats`                      per-queue series moved, the pinned
#                                                            AF_XDP rx_packets sum both engines
#   rss       $IF_A keeps one TX queue (ethtool -L): every   no thread opened or lost a session
#             datagram now reaches queue 0, thread 1's        (kcptun's format too: handed over
#             sessions' too; one stream on every session      by address), thread 0 handed
#             of both clients                                 datagrams over, 32 uploads intact
#   reload    SIGHUP with the same flags                     "reload: nothing changed" (a
#                                                            computed default is no change),
#                                                            still 2 threads, data flows
#   stop      SIGTERM                                        exit 0 within 5 s, no XDP program
#                                                            on $IF_B, no pins left
set -eu
NETNS_TAG=kxq$$
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/download.sh"
work_dir xdpq
FLAGS="--key queues-selftest --crypt aes --mode fast3 --sndwnd 1024 --rcvwnd 1024 --quiet"
SIZE=$((8 << 20))
fail=0

# the default (--threads 0) gives min(RX queues, cores) engines: 2 here unless this process
# may run on one core only, where --threads 2 still gives 2
THREADS=""
[ "$(nproc)" -ge 2 ] || THREADS="--threads 2"

bpffs_mount
NETNS_QUEUES=2 netns_pair
on_cleanup "in_b $KCPX down $IF_B"
in_b python3 "$TCPIO" sink 9111 "$work" & track_pid $!
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" --xdp-mode native server -l :4111 \
	-t 127.0.0.1:9111 $THREADS $FLAGS --metrics 127.0.0.1:9191 --log "$work/server.log" &
spid=$!
track_pid $spid
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8491 -r "$IP_B:4111" --conn 16 \
	$FLAGS --log "$work/client.log" & cpid=$!
track_pid $cpid
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8492 -r "$IP_B:4111" --conn 16 \
	--proto kcptun $FLAGS --log "$work/client2.log" & track_pid $!
wait_udp_port "$NS_B" 4111 20
wait_tcp_port "$NS_A" 8491 20
wait_tcp_port "$NS_A" 8492 20
wait_tcp_port "$NS_B" 9191 20
# logged once the engines run, after the ports opened
wait_log "$work/server.log" "2 threads" 20 || { echo "FAIL: the server did not start 2 threads"; fail=1; }
if [ -z "$THREADS" ]; then
	grep -q "$IF_B: 2 engines: one per RX queue" "$work/server.log" ||
		{ echo "FAIL: the default did not say 2 engines, one per RX queue"; fail=1; }
fi

thread_sessions() {
	kcpx_status "$spid" 2>/dev/null | sed -n "s/^  thread $1: \([0-9]*\) sessions.*/\1/p"
}
# kcptun_on K: thread K's sessions in kcptun's format (the proto column of its sessions)
kcptun_on() {
	kcpx_status "$spid" 2>/dev/null |
		awk -v k="$1:" '/^  thread [0-9]+:/ { cur = $2 } cur == k && $3 == "kcptun" { n++ }
			END { print n + 0 }'
}
queue_rx() {
	kcpx_status "$spid" 2>/dev/null |
		sed -n "s/^  $IF_B queue $1 (thread $1): af_xdp datagrams in \([0-9]*\) .*/\1/p"
}

echo "spread: connections until both server threads hold a session, thread 1 a kcptun one"
# 16 connections at once to each client open its 16 sessions (it picks them in turn), each
# with a port the kernel gives a TX queue: none of them on queue 1 is 1 in 65,536. All of
# them now: the rss step counts the sessions and must open none.
spread_ok=0
for port in 8491 8492; do
	in_a timeout 120 python3 "$TCPIO" sendmany 127.0.0.1 "$port" 16 1024 1 >/dev/null 2>&1 ||
		{ echo "FAIL: spread: a connection to $port failed"; fail=1; }
done
if [ "$(thread_sessions 0)" -ge 1 ] 2>/dev/null && [ "$(thread_sessions 1)" -ge 1 ] 2>/dev/null &&
	[ "$(kcptun_on 1)" -ge 1 ] 2>/dev/null; then
	spread_ok=1
fi
if [ "$spread_ok" = 1 ]; then
	for q in 0 1; do
		echo "  thread $q: $(thread_sessions $q) sessions ($(kcptun_on $q) kcptun), queue $q: $(queue_rx $q) datagrams in"
		[ "$(queue_rx $q)" -gt 0 ] 2>/dev/null ||
			{ echo "FAIL: queue $q received nothing over AF_XDP"; fail=1; }
	done
else
	echo "FAIL: the sessions did not spread over both server threads"
	"$KCPX" status "$spid" | sed 's/^/  | /'
	fail=1
fi

echo "upload: 4 connections x $SIZE bytes at once"
rm -f "$work"/*.sha
upload4 8491 "$SIZE" "$work"
[ "$fail" = 0 ] && echo "  4 x $SIZE bytes intact"

echo "counters: per-queue series in /metrics, the pinned AF_XDP counters"
in_b curl -sf http://127.0.0.1:9191/metrics >"$work/metrics" || true
for q in 0 1; do
	v=$(sed -n "s/^kcpx_queue_datagrams_total{queue=\"$q\",thread=\"$q\",dir=\"in\"} //p" "$work/metrics")
	[ "${v:-0}" -gt 0 ] || { echo "FAIL: /metrics: queue $q in is '${v:-}'"; fail=1; }
	v=$(sed -n "s/^kcpx_thread_sessions{thread=\"$q\"} //p" "$work/metrics")
	[ "${v:-0}" -ge 1 ] || { echo "FAIL: /metrics: thread $q holds '${v:-}' sessions"; fail=1; }
done
# the pinned map's rx_packets is both engines' (each publishes into a slot of its own,
# once a second): wait for it to reach the queues' sum as read now
rx0=$(queue_rx 0) rx1=$(queue_rx 1)
pinned_rx() {
	in_b "$KCPX" stats "$IF_B" --json | python3 -c \
		'import json,sys; print(json.load(sys.stdin)["counters"]["kcpx_xsk_stats"]["rx_packets"])'
}
for _ in $(seq 1 200); do
	pinned=$(pinned_rx)
	[ "$pinned" -ge $((rx0 + rx1)) ] 2>/dev/null && break
	sleep 0.1
done
echo "  queues 0 + 1: $rx0 + $rx1 datagrams; kcpx_xsk_stats rx_packets $pinned"
[ "$pinned" -ge $((rx0 + rx1)) ] 2>/dev/null ||
	{ echo "FAIL: the pinned rx_packets ($pinned) is not both queues' sum"; fail=1; }

echo "rss: $IF_A sends on one TX queue only, so queue 0 gets thread 1's sessions' datagrams"
handed() {
	kcpx_status "$spid" 2>/dev/null |
		sed -n "s/^  thread $1: .*handed to another thread \([0-9]*\),.*/\1/p"
}
s0=$(thread_sessions 0) s1=$(thread_sessions 1) h0=$(handed 0) q1=$(queue_rx 1)
if in_a ethtool -L "$IF_A" tx 1 >"$work/ethtool" 2>&1; then
	rm -f "$work"/*.sha
	# 16 connections at once to each client: one on every session (picked in turn)
	in_a timeout 120 python3 "$TCPIO" sendmany 127.0.0.1 8491 16 $((256 << 10)) 11 >"$work/sentn" &
	p1=$!
	in_a timeout 120 python3 "$TCPIO" sendmany 127.0.0.1 8492 16 $((256 << 10)) 31 >"$work/sentk" &
	p2=$!
	wait "$p1" || true
	wait "$p2" || true
	for _ in $(seq 1 100); do [ "$(ls "$work"/*.sha 2>/dev/null | wc -l)" -ge 32 ] && break; sleep 0.1; done
	[ "$(cat "$work/sentn" "$work/sentk" | wc -l)" = 32 ] ||
		{ echo "FAIL: rss: $(cat "$work/sentn" "$work/sentk" | wc -l) of 32 uploads sent"; fail=1; }
	while read -r sha; do
		grep -q "^$sha " "$work"/*.sha 2>/dev/null ||
			{ echo "FAIL: rss: an upload did not arrive intact"; fail=1; }
	done < <(cat "$work/sentn" "$work/sentk")
	echo "  thread 0 handed $(( $(handed 0) - h0 )) datagrams to thread 1; queue 1 got $(( $(queue_rx 1) - q1 )) more"
	[ "$(thread_sessions 0)" = "$s0" ] ||
		{ echo "FAIL: rss: thread 0 holds $(thread_sessions 0) sessions, had $s0 (a moved peer got a new one)"; fail=1; }
	[ "$(thread_sessions 1)" = "$s1" ] ||
		{ echo "FAIL: rss: thread 1 holds $(thread_sessions 1) sessions, had $s1"; fail=1; }
	[ "$(handed 0)" -gt "$h0" ] ||
		{ echo "FAIL: rss: thread 0 handed nothing over"; fail=1; }
	in_a ethtool -L "$IF_A" tx 2 >/dev/null 2>&1 || true
else
	echo "FAIL: ethtool -L $IF_A tx 1: $(cat "$work/ethtool")"
	fail=1
fi

echo "reload: SIGHUP"
kill -HUP "$spid"
wait_log "$work/server.log" "reload( refused)?:" 30 || { echo "FAIL: no reload logged"; fail=1; }
grep -q "reload: nothing changed" "$work/server.log" ||
	{ echo "FAIL: the same flags did not reload as unchanged: $(grep -m1 reload "$work/server.log")"; fail=1; }
[ -n "$(thread_sessions 1)" ] || { echo "FAIL: no thread 1 after the reload"; fail=1; }
in_a timeout 60 python3 "$TCPIO" send 127.0.0.1 8491 $((1 << 20)) 9 >"$work/sent9" || true
for _ in $(seq 1 100); do grep -q "^$(cat "$work/sent9") " "$work"/*.sha 2>/dev/null && break; sleep 0.1; done
grep -q "^$(cat "$work/sent9") " "$work"/*.sha 2>/dev/null ||
	{ echo "FAIL: no data after the reload"; fail=1; }

echo "stop: SIGTERM"
stop_up server "$spid" "$NS_B" "$IF_B" "$work/server.log" || fail=1

if [ "$fail" != 0 ]; then
	echo "--- server log"; tail -20 "$work/server.log"
	echo "--- client log"; tail -20 "$work/client.log"
	echo "--- kcptun-format client log"; tail -20 "$work/client2.log"
	exit 1
fi
echo "PASS"
