#!/usr/bin/env bash
# Scale: 10,000 concurrent streams through one session, then 1,000 sessions on one server.
#
#   [ A ] manyconn run -> kcpx client :8388 ==udp (veth)== kcpx server :4000 [ B ]
#                         (--conn 1, then --conn 1000)        -> manyconn echo :9000
#
# Checks, for each part: every stream's bytes come back intact (manyconn checks each byte
# and holds all streams open until every one got its echo, so they are open at once);
# each daemon's peak RSS during the run <= RSS_MAX_KB (64 MB; 1,000 sessions: SESS_RSS_MAX_KB,
# 160 MB, as each session has its own KCP, FEC and crypto state); once the streams are closed,
# `kcpx status` shows 0 connections and nothing buffered on both ends and each daemon has
# the fds it had before the run (no fd leak). Part two: the server shows 1,000 sessions.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir selftest
STREAMS=${STREAMS:-10000}
SESSIONS=${SESSIONS:-1000}
SIZE=${SIZE:-4096}
RSS_MAX_KB=${RSS_MAX_KB:-65536}
SESS_RSS_MAX_KB=${SESS_RSS_MAX_KB:-163840}
MANY=$NETNS_TOP/tests/lib/manyconn.py
KEY=kcpx-scale
FLAGS=${FLAGS:-} # more flags for both ends
# fds: 10,000 streams need that many on each end (and on the echo server)
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((STREAMS + 200)) ]; then
	echo "SKIP: the fd limit $(ulimit -n) is below $((STREAMS + 200))"
	exit 4
fi

netns_pair
in_b python3 "$MANY" echo 9000 & track_pid $!
wait_tcp_port "$NS_B" 9000

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# sample PID OUT: peak RSS of PID until OUT.stop exists
sample() {
	local pid=$1 out=$2 peak=0 r
	while [ ! -e "$out.stop" ]; do
		r=$(rss_kb "$pid")
		((r > peak)) && peak=$r
		sleep 0.05
	done
	echo "$peak" >"$out"
}

# drained PID: the tunnel has no connection and no stream byte buffered
drained() {
	"$KCPX" status "$1" 2>/dev/null | grep -q "memory: 0 connections, stream bytes buffered 0 in 0 out"
}

fail=0
# part NAME N RSS_LIMIT_KB CLIENT_FLAGS SERVER_FLAGS
part() {
	local name=$1 n=$2 lim=$3 cflags=$4 sflags=$5 spid cpid res i
	local port=$((8390 + ${#name}))
	# nsenter execs the daemon: $! is its pid
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l ":$port" -t 127.0.0.1:9000 \
		--key "$KEY" --quiet $FLAGS $sflags --log "$work/$name-s.log" & spid=$!
	track_pid $spid
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l "127.0.0.1:$port" -r "$IP_B:$port" \
		--key "$KEY" --quiet $FLAGS $cflags --log "$work/$name-c.log" & cpid=$!
	track_pid $cpid
	wait_udp_port "$NS_B" $port
	wait_tcp_port "$NS_A" $port
	# a first stream makes the first session: the baseline is taken with it up
	in_a python3 "$MANY" run 127.0.0.1 $port 1 16 --timeout 30 >/dev/null
	for ((i = 0; i < 300; i++)); do drained $spid && drained $cpid && break; sleep 0.1; done
	local sfd0 cfd0
	sfd0=$(fds $spid)
	cfd0=$(fds $cpid)
	sample $spid "$work/$name.s.rss" & local s1=$!
	sample $cpid "$work/$name.c.rss" & local s2=$!
	if ! res=$(in_a python3 "$MANY" run 127.0.0.1 $port "$n" "$SIZE" --timeout 120 2>&1); then
		echo "FAIL: $name: $res"
		fail=1
	fi
	touch "$work/$name.s.rss.stop" "$work/$name.c.rss.stop"
	wait $s1 $s2
	local srss crss
	srss=$(cat "$work/$name.s.rss")
	crss=$(cat "$work/$name.c.rss")
	echo "$name: $res"
	echo "$name: peak RSS server ${srss} kB, client ${crss} kB (limit $lim kB each)"
	[ "$srss" -le "$lim" ] || { echo "FAIL: $name: server RSS $srss kB"; fail=1; }
	[ "$crss" -le "$lim" ] || { echo "FAIL: $name: client RSS $crss kB"; fail=1; }
	# every stream closed on both ends, nothing left buffered, fds back to the baseline
	for ((i = 0; i < 300; i++)); do drained $spid && drained $cpid && break; sleep 0.1; done
	if ! drained $spid || ! drained $cpid; then
		echo "FAIL: $name: connections left after the streams closed"
		"$KCPX" status $spid | grep memory
		"$KCPX" status $cpid | grep memory
		fail=1
	fi
	echo "$name: fds server $sfd0 -> $(fds $spid), client $cfd0 -> $(fds $cpid)"
	if [ "$name" = sessions ]; then
		# the client keeps its sessions (one UDP socket each): only TCP fds must go
		[ "$(fds $spid)" -eq "$sfd0" ] || { echo "FAIL: $name: server fd leak"; fail=1; }
		[ "$(fds $cpid)" -le $((cfd0 + n)) ] || { echo "FAIL: $name: client fd leak"; fail=1; }
		local have
		have=$(kcpx_status "$spid" | sed -n 's/.*: \([0-9]*\) sessions$/\1/p')
		echo "$name: server has $have sessions"
		[ "$have" -ge "$n" ] || { echo "FAIL: $name: $have sessions, not $n"; fail=1; }
	else
		[ "$(fds $spid)" -eq "$sfd0" ] || { echo "FAIL: $name: server fd leak"; fail=1; }
		[ "$(fds $cpid)" -eq "$cfd0" ] || { echo "FAIL: $name: client fd leak"; fail=1; }
	fi
	"$KCPX" status $spid | grep memory | sed "s/^/$name: server/"
	kill -TERM $spid $cpid
	wait $spid $cpid 2>/dev/null || true
}

part streams "$STREAMS" "$RSS_MAX_KB" "" ""
# every stream on its own session: --conn opens them round robin; the server takes that
# many sessions and handshakes from one address (no --persource, --sessrate, --hsrate)
part sessions "$SESSIONS" "$SESS_RSS_MAX_KB" "--conn $SESSIONS" \
	"--hsrate 0 --sessrate 0 --persource 0 --maxsessions $((SESSIONS + 16))"
[ "$fail" -eq 0 ] || tail_logs
exit $fail
