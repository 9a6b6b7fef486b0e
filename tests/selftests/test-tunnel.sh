#!/usr/bin/env bash
# End to end over plain UDP sockets: kcpx client in A, kcpx server in B.
#
#   [ A ] tcpio send/recv/multi -> kcpx client :8388 ==udp== kcpx server :4000 [ B ]
#         $IP_A                   (veth)                       $IP_B -> tcpio sink/source/echo
#
# Checks: 64 MiB each way with sha256 equal at both ends, 32 concurrent echo streams,
# `kcpx stats -p PID` shows the client's counters, and that both daemons survive and shut
# down cleanly on SIGTERM.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir selftest
SIZE=${SIZE:-$((64 << 20))}
FLAGS=${FLAGS:---crypt none --nocomp --ds 0 --ps 0 --mode fast3 --sndwnd 1024 --rcvwnd 1024}

netns_pair
# kcpx server in B forwards to three local services; each client port maps to one server.
in_b python3 "$TCPIO" sink 9001 "$work" & track_pid $!
in_b python3 "$TCPIO" source 9002 "$SIZE" 7 & track_pid $!
in_b python3 "$TCPIO" echo 9003 & track_pid $!
for i in 1 2 3; do
	# shellcheck disable=SC2086
	in_b "$KCPX" server -l ":400$i" -t "127.0.0.1:900$i" $FLAGS --quiet \
		--log "$work/server$i.log" & track_pid $!
	# shellcheck disable=SC2086
	in_a "$KCPX" client -l "127.0.0.1:838$i" -r "$IP_B:400$i" $FLAGS --quiet \
		--log "$work/client$i.log" & track_pid $!
done
for i in 1 2 3; do
	wait_udp_port "$NS_B" "400$i"
	wait_tcp_port "$NS_A" "838$i"
	wait_tcp_port "$NS_B" "900$i"
done

fail=0
echo "upload: $SIZE bytes A -> B"
t0=$(date +%s.%N)
sent=$(in_a timeout 300 python3 "$TCPIO" send 127.0.0.1 8381 "$SIZE" 7)
for _ in $(seq 1 300); do [ -e "$work/0.sha" ] && break; sleep 0.1; done
got=$(cut -d' ' -f1 "$work/0.sha" 2>/dev/null || echo none)
t1=$(date +%s.%N)
echo "  sent $sent"
echo "  got  $got ($(cut -d' ' -f2 "$work/0.sha" 2>/dev/null) bytes) in $(echo "$t1 - $t0" | bc 2>/dev/null || echo ?)s"
[ "$sent" = "$got" ] || { echo "FAIL: upload sha256 differs"; fail=1; }

echo "kcpx stats -p: the client's counters from its control socket (nothing is pinned)"
cpid=$(pgrep -f -- "$KCPX client -l 127.0.0.1:8381 -r $IP_B:4001 " | head -1)
"$KCPX" stats -p "${cpid:-0}" >"$work/stats.txt" 2>&1 || true
grep -q '^snmp$' "$work/stats.txt" &&
	grep -Eq '^  OutPkts +[1-9][0-9]{4,}$' "$work/stats.txt" &&
	grep -Eq '^  BytesSent +[1-9][0-9]{7,}$' "$work/stats.txt" &&
	grep -q '^tunnel$' "$work/stats.txt" &&
	grep -Eq '^  sessions +1$' "$work/stats.txt" ||
	{ echo "FAIL: kcpx stats -p $cpid"; cat "$work/stats.txt"; fail=1; }
# two samples: the second carries rates
"$KCPX" stats -p "${cpid:-0}" -i 0.2 -n 2 --json >"$work/stats.json" 2>&1 || true
python3 -c 'import json, sys
a, b = [json.loads(l) for l in open(sys.argv[1])]
assert a["pid"] == b["pid"] == int(sys.argv[2]) and "per_second" not in a, a
assert b["counters"]["snmp"]["OutPkts"] >= a["counters"]["snmp"]["OutPkts"] > 10000, b
assert set(b["per_second"]) == {"snmp", "tunnel"}, b' "$work/stats.json" "${cpid:-0}" ||
	{ echo "FAIL: kcpx stats -p $cpid --json"; cat "$work/stats.json"; fail=1; }

echo "download: $SIZE bytes B -> A"
want=$(python3 "$TCPIO" data "$SIZE" 7)
read -r got gotn < <(in_a timeout 300 python3 "$TCPIO" recv 127.0.0.1 8382)
echo "  want $want"
echo "  got  $got ($gotn bytes)"
[ "$want" = "$got" ] || { echo "FAIL: download sha256 differs"; fail=1; }

echo "32 concurrent echo streams"
in_a timeout 300 python3 "$TCPIO" multi 127.0.0.1 8383 32 $((1 << 20)) || { echo "FAIL: concurrent streams"; fail=1; }

# every daemon still running, then a clean SIGTERM shutdown
for p in $(jobs -p); do :; done
alive=$(pgrep -fc "$KCPX (client|server) -l .*$work" || true)
[ "$alive" -ge 6 ] || { echo "FAIL: a kcpx daemon died ($alive of 6 left)"; fail=1; }
pkill -TERM -f "$KCPX (client|server) -l .*$work" || true
# bounded: a busy machine may take a while to schedule six exits
for _ in $(seq 1 200); do
	pgrep -f "$KCPX (client|server) -l .*$work" >/dev/null || break
	sleep 0.1
done
if pgrep -f "$KCPX (client|server) -l .*$work" >/dev/null; then
	echo "FAIL: kcpx did not exit within 20 s of SIGTERM"
	fail=1
fi
[ "$fail" -eq 0 ] || tail_logs
exit $fail
