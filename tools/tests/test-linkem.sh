#!/usr/bin/env bash
# linkem selftests: does the emulated link do what it was told?
#
#   [ lkmPIDa ] 10.N.0.1 ==veth== [ lkmPIDm: linkem ] ==veth== 10.N.0.2 [ lkmPIDb ]
#
# delay      smallest ping RTT within 10 % of the configured delays (symmetric and asymmetric)
# loss       udpseq over 10k datagrams: measured loss within 5 standard deviations
# burst      Gilbert-Elliott: mean loss and mean burst length near p/(p+r) and 1/r
# jitter     jitter alone does not reorder; reorder=N does
# dup        duplicates near the configured rate
# rate       a 100 Mbit/s limit holds for an offered 200 Mbit/s, tail drops counted
# throughput at least 1 Gbit/s of 1350-byte UDP through a 10 ms link, nothing dropped
# sigterm    exit 0 on SIGTERM with the final counters printed
set -u
cd "$(dirname "$0")/../.." || exit 1
. tools/tests/lib.sh
OUT=${OUT:-build}
. tools/lib/wan.sh
need_root
for b in linkem udpseq; do
	[ -x "$OUT/tools/$b" ] || make --no-print-directory "$OUT/tools/$b" >/dev/null || exit 1
done
UDPSEQ=$PWD/$OUT/tools/udpseq
ALL_TESTS=${ALL_TESTS:-delay loss burst jitter dup rate throughput sigterm}
NA=$(wan_ns 0 a)
NB=$(wan_ns 0 b)
IPB=$(wan_ip 0 b)
# check NAME VALUE LO HI: LO <= VALUE <= HI
check() {
	if awk -v v="$2" -v lo="$3" -v hi="$4" 'BEGIN { exit !(v >= lo && v <= hi) }'; then
		ok "$1: $2 in [$3, $4]"
	else
		bad "$1: $2 not in [$3, $4]"
	fi
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# udpseq_run COUNT LEN BPS: numbered datagrams A -> B, prints udpseq's summary line
udpseq_run() {
	local out
	out=$(mktemp)
	nsenter --net=/run/netns/"$NB" "$UDPSEQ" -r 9000 -i 1500 -T 60 >"$out" &
	local rpid=$!
	track_pid $rpid
	wait_udp_port "$NB" 9000 || return 1
	in_ns "$NA" "$UDPSEQ" -s "$IPB:9000" -n "$1" -l "$2" -b "$3"
	wait $rpid
	cat "$out"
	rm -f "$out"
}

# ping_min COUNT -> smallest RTT in ms: linkem's delay is a floor that a loaded machine
# only adds to (late wake-ups of linkem or ping), so the minimum measures the delay and
# the average would measure the load
ping_min() {
	in_ns "$NA" ping -q -c "$1" -i 0.05 -W 2 "$IPB" | awk '/^rtt/ { split($4, v, "/"); print v[1] }'
}

test_delay() {
	wan_linkem 0 --both delay=20 || return 1
	ping_min 3 >/dev/null # warm
	check "delay 20+20 ms: ping RTT" "$(ping_min 20)" 36 44
	wan_linkem 0 --ab delay=40 --ba delay=5 || return 1
	check "delay 40+5 ms: ping RTT" "$(ping_min 20)" 40.5 49.5
	wan_linkem 0 || return 1
	check "no delay: ping RTT" "$(ping_min 20)" 0 2
}

test_loss() {
	local s lost
	wan_linkem 0 --ab loss=5 -s 7 || return 1
	s=$(udpseq_run 10000 100 20e6)
	echo "  $s"
	lost=$(field "$s" lost)
	# binomial: mean 500, sd = sqrt(10000 * 0.05 * 0.95) = 21.8; 5 sd = 109
	check "loss 5 % of 10k" "$lost" 391 609
	check "loss: no duplicates" "$(field "$s" dup)" 0 0
}

test_burst() {
	local s lost
	# p = 1 %, r = 25 %: stationary loss 1/26 = 3.85 %, mean burst 4 frames
	wan_linkem 0 --ab ge=1/25/100/0 -s 11 || return 1
	s=$(udpseq_run 10000 100 20e6)
	echo "  $s"
	lost=$(field "$s" lost)
	# bursts are correlated: ~100 bursts of geometric length, so allow a wide band
	check "GE loss of 10k" "$lost" 200 600
	check "GE mean burst length" "$(field "$s" mean_burst)" 2.8 5.5
	check "GE longest burst" "$(field "$s" max_burst)" 6 100
}

test_jitter() {
	local s
	wan_linkem 0 --ab delay=10,jitter=5 || return 1
	s=$(udpseq_run 2000 100 10e6)
	echo "  $s"
	check "jitter without reorder: reordered" "$(field "$s" reorder)" 0 0
	check "jitter: all delivered" "$(field "$s" recv)" 2000 2000
	wan_linkem 0 --ab delay=10,reorder=5/3 -s 3 || return 1
	s=$(udpseq_run 2000 100 10e6)
	echo "  $s"
	check "reorder 5 %: reordered" "$(field "$s" reorder)" 50 150
}

test_dup() {
	local s
	wan_linkem 0 --ab dup=10 -s 5 || return 1
	s=$(udpseq_run 5000 100 10e6)
	echo "  $s"
	# mean 500, sd 21
	check "dup 10 % of 5k" "$(field "$s" dup)" 400 600
}

test_rate() {
	local s st try mbps
	# The rate is judged with a 1 MiB queue: the senders share the 2 cores with linkem, and
	# a sender descheduled for longer than a small queue lasts (64 KiB is 5 ms) leaves the
	# link idle, which says nothing about linkem. Up to three runs, judged on the best, for
	# the busy spells that starve linkem itself (that only lowers the rate, never raises it).
	for try in 1 2 3; do
		wan_linkem 0 --ab rate=100m,limit=1m || return 1
		s=$(udpseq_run 40000 1350 200e6)
		echo "  $s"
		st=$(wan_stats 0)
		echo "$st" | sed 's/^/  /'
		mbps=$(field "$s" mbps)
		awk -v v="$mbps" 'BEGIN { exit !(v >= 88) }' && break
		[ "$try" -lt 3 ] && echo "  run $try: $mbps Mbit/s, linkem starved? again"
	done
	# 1350 B payload in a 1392 B frame: 100 Mbit/s of frames is 97 Mbit/s of payload
	check "rate 100 Mbit/s: payload Mbit/s" "$mbps" 88 100
	check "rate: tail drops" "$(wan_stat_field "$st" ab drop_queue)" 1000 1000000
	# the queue limit itself, on a short run
	wan_linkem 0 --ab rate=100m,limit=64k || return 1
	s=$(udpseq_run 10000 1350 200e6)
	st=$(wan_stats 0)
	echo "$st" | sed 's/^/  /'
	check "rate: queue never above 64 KiB (48 frames)" \
		"$(wan_stat_field "$st" ab queued_max)" 1 60
}

test_throughput() {
	local st rx fwd drop sec=3 mbps offered j1 j2 p
	wan_linkem 0 --both delay=10 || return 1
	# two senders: one iperf3 process alone cannot always offer 1 Gbit/s on a busy box
	for p in 5201 5202; do
		nsenter --net=/run/netns/"$NB" iperf3 -s -1 -p $p >/dev/null 2>&1 &
		track_pid $!
	done
	sleep 0.3
	in_ns "$NA" iperf3 -u -b 560M -l 1350 -t $sec -c "$IPB" -p 5201 >/dev/null 2>&1 &
	j1=$!
	in_ns "$NA" iperf3 -u -b 560M -l 1350 -t $sec -c "$IPB" -p 5202 >/dev/null 2>&1 &
	j2=$!
	wait $j1 $j2
	st=$(wan_stats 0)
	echo "$st" | sed 's/^/  /'
	rx=$(wan_stat_field "$st" ab rx_bytes)
	fwd=$(wan_stat_field "$st" ab fwd_bytes)
	drop=$(($(wan_stat_field "$st" ab drop_rx) + $(wan_stat_field "$st" ab drop_tx)))
	mbps=$(awk -v b="$fwd" -v s=$sec 'BEGIN { printf "%.0f", b * 8 / s / 1e6 }')
	offered=$(awk -v b="$rx" -v d="$drop" -v s=$sec 'BEGIN { printf "%.0f", (b + d * 1392) * 8 / s / 1e6 }')
	if [ "$offered" -ge 1030 ]; then
		check "1350-byte UDP forwarded (offered $offered), Mbit/s" "$mbps" 1000 100000
	else
		echo "SKIP rate part: the senders offered only $offered Mbit/s on this busy machine"
	fi
	check "forwarded / received" "$(awk -v a="$fwd" -v b="$rx" 'BEGIN { print a / b }')" 0.999 1
	check "frames dropped by linkem's sockets, per mille of received" \
		"$(awk -v d="$drop" -v r="$(wan_stat_field "$st" ab rx)" 'BEGIN { print 1000 * d / r }')" 0 20
}

test_sigterm() {
	local log pid rc
	wan_linkem 0 --both delay=200 || return 1
	in_ns "$NA" ping -c 5 -i 0.01 -W 1 "$IPB" >/dev/null 2>&1 &
	sleep 0.1
	log=$(wan_log 0)
	pid=${_wan_lkpid[0]}
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	_wan_lkpid[0]=
	check "exit code on SIGTERM" "$rc" 0 0
	if grep -q 'linkem: exit ab .*queued=' "$log" && grep -q 'linkem: exit ba' "$log"; then
		ok "final counters printed: $(grep 'linkem: exit ab' "$log" | grep -o 'queued=[0-9]*')"
	else
		bad "no final counters in the log"
		cat "$log"
	fi
	wait
}

wan_up 0 || exit 1
for t in $ALL_TESTS; do
	echo "== $t"
	"test_$t" || bad "$t: setup failed"
done
echo "linkem selftests: $fails failed"
[ "$fails" -eq 0 ]
