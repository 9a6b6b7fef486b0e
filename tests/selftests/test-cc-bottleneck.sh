#!/usr/bin/env bash
# The congestion controller against a real bottleneck (issue 11, docs/CONGESTION.md).
#
#   [ a: tcpio send -> kcpx client ] ==veth== [ m: linkem 20 Mbit/s, 10 ms, 50 ms queue ]
#       ==veth== [ b: kcpx server -> tcpio sink ]
#
# The same 6 MiB upload with --cc off and with --cc bbr (fast3, windows 1024, no FEC):
# both arrive intact; --cc off overruns linkem's tail-drop queue (the link is a real
# bottleneck here), --cc bbr loses under a tenth of what --cc off loses and at most 10 %
# of its frames (quiet, it loses under 2 %: its startup overshoot; on a machine loaded
# far beyond its cores a descheduled receiver bunches its ACKs, the delivery rate reads
# high for a round, and one run lost 3.5 %: the bounds keep that a pass and still fail a
# sender without congestion control); `kcpx status` shows the controller's line.
# 20 Mbit/s is far below what even a busy machine moves.
set -u
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-build}
# shellcheck source=../../tools/lib/wan.sh
. tools/lib/wan.sh
work_dir ccbn
[ -x "$OUT/tools/linkem" ] || make --no-print-directory "$OUT/tools/linkem" >/dev/null || exit 1
SIZE=$((6 << 20))
FLAGS="--crypt none --nocomp --ds 0 --ps 0 --mode fast3 --sndwnd 1024 --rcvwnd 1024 --quiet"
NA=$(wan_ns 0 a)
NB=$(wan_ns 0 b)
IPB=$(wan_ip 0 b)
fail=0

wan_up 0 || exit 1
in_ns "$NB" python3 "$TCPIO" sink 9001 "$work" &
track_pid $!
wait_tcp_port "$NB" 9001

# link_sum: "FRAMES_IN QUEUE_DROPS" over both directions so far
link_sum() {
	wan_stats 0 | awk '{ for (i = 4; i <= NF; i++) { split($i, kv, "=");
		if (kv[1] == "rx") r += kv[2]; if (kv[1] == "drop_queue") q += kv[2] } }
		END { print r + 0, q + 0 }'
}

run() { # run CC PORT -> sets DROPS FRAMES
	local cc=$1 port=$2 s c r0 q0 r1 q1 sent got i
	wan_linkem 0 --both "delay=10,rate=20m" -s 7 || exit 1
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NB" "$KCPX" server -l ":$port" -t 127.0.0.1:9001 --cc "$cc" \
		$FLAGS --log "$work/s-$cc.log" &
	s=$!
	track_pid $s
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NA" "$KCPX" client -l "127.0.0.1:$port" -r "$IPB:$port" \
		--cc "$cc" $FLAGS --log "$work/c-$cc.log" &
	c=$!
	track_pid $c
	wait_udp_port "$NB" "$port"
	wait_tcp_port "$NA" "$port"
	read -r r0 q0 <<<"$(link_sum)"
	rm -f "$work"/*.sha
	sent=$(in_ns "$NA" timeout 120 python3 "$TCPIO" send 127.0.0.1 "$port" "$SIZE" 11)
	for ((i = 0; i < 300; i++)); do
		ls "$work"/*.sha >/dev/null 2>&1 && break
		sleep 0.1
	done
	got=$(cat "$work"/*.sha 2>/dev/null | cut -d' ' -f1)
	if [ -z "$sent" ] || [ "$sent" != "$got" ]; then
		echo "FAIL: --cc $cc: upload sha256 differs (sent '$sent', got '$got')"
		fail=1
	fi
	read -r r1 q1 <<<"$(link_sum)"
	if [ "$cc" = bbr ]; then
		kcpx_status "$c" >"$work/status" 2>&1
		grep -q "cc bbr" "$work/status" || {
			echo "FAIL: kcpx status shows no cc line:"
			cat "$work/status"
			fail=1
		}
	fi
	kill "$c" "$s" 2>/dev/null
	wait "$c" "$s" 2>/dev/null
	FRAMES=$((r1 - r0))
	DROPS=$((q1 - q0))
	echo "  --cc $cc: $DROPS of $FRAMES frames dropped at the queue"
}

echo "6 MiB through a 20 Mbit/s, 10 ms link with a 50 ms tail-drop queue"
run off 8391
off_drops=$DROPS
off_frames=$FRAMES
run bbr 8392
[ "$off_drops" -gt $((off_frames / 50)) ] || {
	echo "FAIL: --cc off lost only $off_drops of $off_frames at the queue: no bottleneck?"
	fail=1
}
[ $((DROPS * 100)) -le $((FRAMES * 10)) ] || {
	echo "FAIL: --cc bbr lost $DROPS of $FRAMES frames at the queue (> 10 %)"
	fail=1
}
[ $((DROPS * 10)) -lt "$off_drops" ] || {
	echo "FAIL: --cc bbr lost $DROPS at the queue, not under a tenth of --cc off's $off_drops"
	fail=1
}
[ $fail = 0 ] && echo "PASS"
exit $fail
