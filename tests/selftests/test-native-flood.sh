#!/usr/bin/env bash
# Spoofed floods against a native-protocol session while it carries a transfer. No XDP
# here (UDP sockets): this checks the userspace checks (tag, replay window, AEAD) and
# their counters; the XDP checks are tested with BPF_PROG_RUN (tests/bpf/test_native.c).
#
#   [ A ] tcpio send -> kcpx client --proto kcpx ==udp== kcpx server --proto kcpx [ B ]
#         native-flood.py (AF_PACKET on $IF_A: frames   $IP_B:4001 -> tcpio sink
#         with the client's own address and port)
#
# Each phase uploads $SIZE bytes with sha256 checked: baseline (capturing client frames),
# then under a flood of random payloads, of good headers with bad tags, of old replays,
# and of live replays (each client frame sent twice at once). The server's InErrs must
# account for at least half the flood; goodput with/without flood is reported.
set -eu
NETNS_TAG=kf$$
. "$(dirname "$0")/../lib/netns.sh"
work_dir nflood
here=$NETNS_TOP/tests/selftests
FLOOD="$here/native-flood.py"
SIZE=${SIZE:-$((64 << 20))}
PPS=${PPS:-20000}
SECS=${SECS:-6}
FLAGS="--key flood-selftest --proto kcpx --nocomp --mode fast3 --sndwnd 1024 --rcvwnd 1024 --quiet"

netns_pair
in_b python3 "$TCPIO" sink 9001 "$work" & track_pid $!
# shellcheck disable=SC2086
in_b "$KCPX" server -l :4001 -t 127.0.0.1:9001 $FLAGS --snmplog "$work/snmp.csv" \
	--snmpperiod 1 --log "$work/server.log" & track_pid $!
# shellcheck disable=SC2086
in_a "$KCPX" client -l 127.0.0.1:8381 -r "$IP_B:4001" $FLAGS --log "$work/client.log" &
track_pid $!
wait_udp_port "$NS_B" 4001 20
wait_tcp_port "$NS_A" 8381 20
wait_tcp_port "$NS_B" 9001 20

fail=0
n=0
upload() { # upload NAME: one transfer, sets $secs
	local sent got t0 t1
	t0=$(date +%s.%N)
	sent=$(in_a timeout 300 python3 "$TCPIO" send 127.0.0.1 8381 "$SIZE" $((n + 11)))
	for _ in $(seq 1 100); do [ -e "$work/$n.sha" ] && break; sleep 0.1; done
	t1=$(date +%s.%N)
	got=$(cut -d' ' -f1 "$work/$n.sha" 2>/dev/null || echo none)
	secs=$(echo "$t1 - $t0" | bc)
	[ "$sent" = "$got" ] || { echo "FAIL: $1: sha256 differs"; fail=1; }
	n=$((n + 1))
}
inerrs() { # the server's InErrs, from an SNMP row written after this call
	local col
	snmp_fresh "$work/snmp.csv" || true
	col=$(head -1 "$work/snmp.csv" | tr ',' '\n' | grep -nx InErrs | cut -d: -f1)
	tail -1 "$work/snmp.csv" | cut -d, -f"$col"
}

in_a python3 "$FLOOD" capture "$IF_A" 4001 4000 "$work/frames" 20 >"$work/captured" &
cap=$!
upload baseline
base=$secs
wait $cap
echo "baseline: $SIZE bytes in ${base}s; captured $(cat "$work/captured") client frames"
e0=$(inerrs)
total=0
for mode in random badtag old live; do
	if [ $mode = live ]; then
		in_a timeout $((SECS + 30)) python3 "$FLOOD" live "$IF_A" 4001 "$SECS" \
			"$work/$mode.started" >"$work/$mode.sent" &
	else
		in_a timeout $((SECS + 30)) python3 "$FLOOD" flood "$IF_A" "$work/frames" $mode \
			"$SECS" "$PPS" "$work/$mode.started" >"$work/$mode.sent" &
	fi
	f=$!
	# the upload starts once the flood runs (the flooder marks that), bounded
	wait_file "$work/$mode.started" $f || true
	upload "$mode"
	wait $f || true
	sent=$(cat "$work/$mode.sent" 2>/dev/null || echo 0)
	total=$((total + sent))
	echo "$mode: $SIZE bytes in ${secs}s under $sent spoofed packets," \
		"goodput $(echo "scale=0; 100 * $base / $secs" | bc)% of baseline"
done
e1=$(inerrs)
echo "server InErrs +$((e1 - e0)) for $total spoofed packets"
[ "$total" -gt 1000 ] || { echo "FAIL: the flood sent almost nothing ($total)"; fail=1; }
[ $(((e1 - e0) * 2)) -ge "$total" ] ||
	{ echo "FAIL: InErrs +$((e1 - e0)) does not account for the flood ($total)"; fail=1; }
alive=$(pgrep -fc "$KCPX (client|server) -l .*$work" || true)
[ "$alive" -ge 2 ] || { echo "FAIL: a kcpx daemon died"; fail=1; }
[ "$fail" -eq 0 ] || tail_logs
exit $fail
