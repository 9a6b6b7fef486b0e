#!/usr/bin/env bash
# --threads: one engine per thread over SO_REUSEPORT UDP sockets (docs/SCALE.md).
#
#   [ A ] tcpio -> kcpx client 127.0.0.1:8481 ==udp== kcpx server :4101 [ B ] -> tcpio
#         $IP_A    --threads 2 --conn 2   (veth)       --threads 2         $IP_B   sink :9101
#                                                                                  echo :9102
#
#   step      what happens                                    checks
#   spread    connections until each client thread has a      each server thread holds one
#             session (the kernel spreads accepted TCP        session and received datagrams
#             connections over the client's listeners)        (per-thread lines of `kcpx status`)
#   upload    16 MiB on each of 4 connections at once         sha256 equal on every one
#   kcptun    a --proto kcptun client, --conn 2, one thread   both server threads take one
#   limits    a --conn 8 client to a --threads 2 server at    3 sessions in all (not 3 per
#             --persource 3 (:4103 -> echo :9102)             thread), the rest refused
#   metrics   /metrics                                        per-thread series, sums
#   reload    SIGHUP with the same flags                      "reload" logged, data still flows
#   stop      SIGTERM                                         both ends exit 0 within 5 s
#
# Roaming across threads (a NAT rebind moves a session's datagrams to the other thread)
# is test-survive.sh's rebind step with the server at --threads 2, run at the end.
set -eu
NETNS_TAG=kth$$
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/download.sh"
work_dir threads
FLAGS="--key threads-selftest --crypt aes --mode fast3 --sndwnd 1024 --rcvwnd 1024 --quiet"
SIZE=$((16 << 20))
fail=0

netns_pair
in_b python3 "$TCPIO" sink 9101 "$work" & track_pid $!
in_b python3 "$TCPIO" echo 9102 & track_pid $!
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l :4101 -t 127.0.0.1:9101 --threads 2 $FLAGS --metrics 127.0.0.1:9190 \
	--log "$work/server.log" & spid=$!
track_pid $spid
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l :4102 -t 127.0.0.1:9102 --threads 2 $FLAGS \
	--log "$work/server2.log" & s2pid=$!
track_pid $s2pid
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8481 -r "$IP_B:4101" --threads 2 --conn 2 $FLAGS \
	--log "$work/client.log" & cpid=$!
track_pid $cpid
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8482 -r "$IP_B:4102" --proto kcptun --conn 2 $FLAGS \
	--log "$work/client2.log" & c2pid=$!
track_pid $c2pid
wait_udp_port "$NS_B" 4101 20
wait_udp_port "$NS_B" 4102 20
wait_tcp_port "$NS_A" 8481 20
wait_tcp_port "$NS_A" 8482 20
wait_tcp_port "$NS_B" 9190 20

# thread_sessions PID I: sessions thread I of that kcpx holds
thread_sessions() {
	kcpx_status "$1" 2>/dev/null | sed -n "s/^  thread $2: \([0-9]*\) sessions.*/\1/p"
}
thread_rx() {
	kcpx_status "$1" 2>/dev/null | sed -n "s/^  thread $2: .*datagrams in \([0-9]*\) .*/\1/p"
}
# spread PID CLIENT_PORT: open connections (1 KiB each) until both server threads hold a
# session; port 8481 leads to the sink, 8482 to the echo service
spread() {
	for _ in $(seq 1 60); do
		if [ "$2" = 8481 ]; then
			in_a timeout 10 python3 "$TCPIO" send 127.0.0.1 "$2" 1024 1 >/dev/null 2>&1 || true
		else
			in_a timeout 10 python3 "$TCPIO" multi 127.0.0.1 "$2" 1 1024 >/dev/null 2>&1 || true
		fi
		if [ "$(thread_sessions "$1" 0)" = 1 ] && [ "$(thread_sessions "$1" 1)" = 1 ]; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

echo "spread: sessions of a --threads 2 --conn 2 client on a --threads 2 server"
if spread "$spid" 8481; then
	echo "  server thread 0: $(thread_sessions "$spid" 0) session, $(thread_rx "$spid" 0) datagrams in"
	echo "  server thread 1: $(thread_sessions "$spid" 1) session, $(thread_rx "$spid" 1) datagrams in"
	[ "$(thread_rx "$spid" 0)" -gt 0 ] && [ "$(thread_rx "$spid" 1)" -gt 0 ] ||
		{ echo "FAIL: a server thread received nothing"; fail=1; }
else
	echo "FAIL: the sessions did not spread over both server threads"
	"$KCPX" status "$spid" | sed 's/^/  | /'
	fail=1
fi
for i in 0 1; do
	[ "$(thread_sessions "$cpid" $i)" = 1 ] ||
		{ echo "FAIL: client thread $i holds $(thread_sessions "$cpid" $i) sessions, want 1"; fail=1; }
done

echo "upload: 4 connections x $SIZE bytes at once"
upload4 8481 "$SIZE" "$work"
[ "$fail" = 0 ] && echo "  4 x $SIZE bytes intact"

echo "kcptun: a kcptun-format client with --conn 2 on a --threads 2 server"
if spread "$s2pid" 8482; then
	echo "  each server thread holds one kcptun-format session"
else
	echo "FAIL: kcptun-format sessions did not spread"
	"$KCPX" status "$s2pid" | sed 's/^/  | /'
	fail=1
fi

echo "limits: --persource 3 holds for both threads of a server together"
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l :4103 -t 127.0.0.1:9102 --threads 2 $FLAGS \
	--persource 3 --sessrate 0 --hsrate 0 --log "$work/server3.log" & s3pid=$!
track_pid $s3pid
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8483 -r "$IP_B:4103" --conn 8 $FLAGS \
	--log "$work/client3.log" & c3pid=$!
track_pid $c3pid
wait_udp_port "$NS_B" 4103 20
wait_tcp_port "$NS_A" 8483 20
# 8 connections, one per --conn slot: each opens a session from its own port, which the
# kernel spreads over both server threads; refused ones keep asking (and are refused)
in_a timeout 10 python3 "$TCPIO" multi 127.0.0.1 8483 8 1024 >/dev/null 2>&1 &
m3=$!
refused=0
for _ in $(seq 1 200); do
	refused=$(kcpx_status "$s3pid" 2>/dev/null | sed -n 's/.*new sessions refused \([0-9]*\).*/\1/p')
	[ "${refused:-0}" -ge 10 ] && break
	sleep 0.1
done
held=$(($(thread_sessions "$s3pid" 0) + $(thread_sessions "$s3pid" 1)))
echo "  sessions held: thread 0 $(thread_sessions "$s3pid" 0), thread 1" \
	"$(thread_sessions "$s3pid" 1); new sessions refused ${refused:-0}"
[ "${refused:-0}" -ge 10 ] || { echo "FAIL: fewer than 10 refusals in 20 s"; fail=1; }
[ "$held" = 3 ] || { echo "FAIL: the server holds $held sessions from one address, want 3"; fail=1; }
kill "$m3" "$c3pid" "$s3pid" 2>/dev/null || true
wait "$m3" "$c3pid" "$s3pid" 2>/dev/null || true

echo "metrics: per-thread series"
in_b curl -sf http://127.0.0.1:9190/metrics >"$work/metrics" || true
for i in 0 1; do
	grep -q "^kcpx_thread_sessions{thread=\"$i\"} 1$" "$work/metrics" ||
		{ echo "FAIL: /metrics has no kcpx_thread_sessions 1 for thread $i"; fail=1; }
done
grep -q '^kcpx_sessions 2$' "$work/metrics" || { echo "FAIL: kcpx_sessions is not 2"; fail=1; }

echo "reload: SIGHUP"
kill -HUP "$spid"
wait_log "$work/server.log" "reload" 30 || { echo "FAIL: no reload logged"; fail=1; }
in_a timeout 60 python3 "$TCPIO" send 127.0.0.1 8481 $((1 << 20)) 9 >"$work/sent9" || true
for _ in $(seq 1 100); do grep -q "^$(cat "$work/sent9") " "$work"/*.sha 2>/dev/null && break; sleep 0.1; done
grep -q "^$(cat "$work/sent9") " "$work"/*.sha 2>/dev/null ||
	{ echo "FAIL: no data after the reload"; fail=1; }

echo "stop: SIGTERM to both ends"
for p in $cpid $spid; do
	kill -TERM "$p"
	for _ in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$p" 2>/dev/null; then
		echo "FAIL: pid $p still runs 20 s after SIGTERM"
		fail=1
	elif wait "$p"; then
		:
	else
		echo "FAIL: pid $p exited with $?"
		fail=1
	fi
done

echo "roaming across threads: test-survive.sh rebind with the server at --threads 2"
if SURVIVE_STEPS=rebind SURVIVE_SERVER_FLAGS="--threads 2" SURVIVE_HANDOFF=1 \
	"$(dirname "$0")/test-survive.sh" >"$work/survive.out" 2>&1; then
	sed 's/^/  /' "$work/survive.out" | grep -v '^  $'
else
	rc=$?
	sed 's/^/  | /' "$work/survive.out"
	if [ "$rc" = 4 ]; then echo "  (skipped: $(tail -1 "$work/survive.out"))"; else fail=1; fi
fi

if [ "$fail" != 0 ]; then
	echo "--- server log"; tail -20 "$work/server.log"
	echo "--- client log"; tail -20 "$work/client.log"
	exit 1
fi
echo "PASS"
