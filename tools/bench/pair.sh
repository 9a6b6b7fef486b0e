#!/usr/bin/env bash
# One bounded iperf3 transfer through a tunnel on a namespace pair, for the bench scripts
# that compare candidates on a bare veth pair (backends.sh, faketcp.sh, queues.sh,
# threads.sh). Source it from the tree's top (it sources ticks.sh), then:
#
#   pair_args "$@"     the scripts' arguments OUT RUNS SECS [FLAGS...] into OUTF, RUNS,
#                      SECS and the array FLAGS; KCPX is the tree's build unless set
#   pair_one LABEL     (after tests/lib/netns.sh or tools/lib/wan.sh, with LOG set)
#   pair_rounds CAND.. RUNS rounds of the caller's "one CAND RUN" over every CAND in
#                      turn: interleaved, so a busy spell of the machine hits them alike
#
# pair_one starts iperf3 -s :9000 and the server "${srv[@]}" -l :4000 -t 127.0.0.1:9000 in
# NS_B, the client "${cli[@]}" -l 127.0.0.1:8388 -r IP_B:4000 in NS_A, both with --key
# bench --quiet "${extra[@]}" "${FLAGS[@]}"; then iperf3 -c for SECS with
# "${iperf_extra[@]}". Appends one line to OUTF: "LABEL status=ok mbps=... cpu_s_per_gb=..."
# (CPU of the two daemons), or "LABEL status=na reason=..." with the last lines of their
# logs. A caller that defines pair_more (printing "NAPI_TICKS RX_PACKETS") also gets
# cpu_napi and pps, and the NAPI threads' CPU counts in cpu_s_per_gb.

# shellcheck source=ticks.sh
. tools/bench/ticks.sh

# shellcheck disable=SC2034 # OUTF, RUNS, SECS, FLAGS, KCPX: for the caller
pair_args() {
	OUTF=$1
	RUNS=$2
	SECS=$3
	shift 3
	FLAGS=("$@")
	KCPX=${KCPX:-$PWD/build/kcpx}
}

pair_rounds() {
	local run cand
	for ((run = 1; run <= RUNS; run++)); do
		for cand in "$@"; do
			one "$cand" "$run"
		done
	done
}

# shellcheck disable=SC2154 # cli, srv, extra, iperf_extra: set by the caller
pair_one() {
	local label=$1 c s c0 s0 c1 s1 x0=() x1=() i rc r
	in_b iperf3 -s -p 9000 -1 >/dev/null 2>&1 &
	local ipsrv=$!
	track_pid $ipsrv
	nsenter --net=/run/netns/"$NS_B" "${srv[@]}" -l :4000 -t 127.0.0.1:9000 --key bench \
		--quiet "${extra[@]}" "${FLAGS[@]}" >"$LOG/s.log" 2>&1 &
	s=$!
	track_pid $s
	nsenter --net=/run/netns/"$NS_A" "${cli[@]}" -l 127.0.0.1:8388 -r "$IP_B:4000" \
		--key bench --quiet "${extra[@]}" "${FLAGS[@]}" >"$LOG/c.log" 2>&1 &
	c=$!
	track_pid $c
	r=""
	for ((i = 0; i < 100; i++)); do
		in_a ss -Hltn "sport = :8388" 2>/dev/null | grep -q . && break
		if ! kill -0 $c 2>/dev/null || ! kill -0 $s 2>/dev/null; then
			r="a daemon exited"
			break
		fi
		sleep 0.05
	done
	[ -z "$r" ] && [ "$i" = 100 ] && r="the client never listened"
	wait_tcp_port "$NS_B" 9000 >/dev/null 2>&1 || true
	if [ -z "$r" ]; then
		c0=$(cpu_ticks $c) s0=$(cpu_ticks $s)
		declare -F pair_more >/dev/null && read -ra x0 < <(pair_more)
		in_a timeout --kill-after=2 $((SECS + 15)) iperf3 -c 127.0.0.1 -p 8388 -t "$SECS" \
			"${iperf_extra[@]}" -O 0 -J --connect-timeout 5000 >"$LOG/ip.json" 2>&1
		rc=$?
		c1=$(cpu_ticks $c) s1=$(cpu_ticks $s)
		declare -F pair_more >/dev/null && read -ra x1 < <(pair_more)
		if [ -z "$c1" ] || [ -z "$s1" ]; then
			r="a daemon died during the transfer"
		else
			# the NAPI threads' ticks and the datagrams received, when pair_more counts them
			[ ${#x1[@]} -eq 2 ] && x1=($((x1[0] - x0[0])) $((x1[1] - x0[1])))
			r=$(python3 - "$LOG/ip.json" "$rc" $((c1 - c0)) $((s1 - s0)) \
				"$(getconf CLK_TCK)" "${x1[@]}" <<'EOF'
import json, sys
path, rc, c, s, hz, *more = sys.argv[1], *map(int, sys.argv[2:])
try:
    j = json.load(open(path))
    e = j["end"]["sum_received"]
    b, t = e["bytes"], e["seconds"]
except Exception:
    print("iperf3 exit %d, no result" % rc)
    sys.exit()
if not b or not t:
    print("iperf3 moved nothing")
    sys.exit()
if more:
    k, p = more
    print("status=ok mbps=%.1f bytes=%d secs=%.3f cpu_c=%.2f cpu_s=%.2f cpu_napi=%.2f "
          "cpu_s_per_gb=%.3f pps=%.0f" % (b * 8 / t / 1e6, b, t, c / hz, s / hz, k / hz,
                                         (c + s + k) / hz / (b / 1e9), p / t))
else:
    print("status=ok mbps=%.1f bytes=%d secs=%.3f cpu_c=%.2f cpu_s=%.2f cpu_s_per_gb=%.3f"
          % (b * 8 / t / 1e6, b, t, c / hz, s / hz, (c + s) / hz / (b / 1e9)))
EOF
)
		fi
	fi
	pair_stop_record "$label" "$r" $c $s $ipsrv
}

# pair_stop_record LABEL RESULT CLIENT SERVER [PID...]: stop the two daemons (TERM, 2 s,
# then KILL with the other PIDs), append "LABEL RESULT" to OUTF, or a status=na line with
# the last lines of $LOG/s.log and $LOG/c.log when RESULT is a reason.
pair_stop_record() {
	local label=$1 r=$2 c=$3 s=$4 i
	shift 2
	kill -TERM $c $s 2>/dev/null
	for ((i = 0; i < 40; i++)); do
		kill -0 $c 2>/dev/null || kill -0 $s 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$@" 2>/dev/null
	wait "$@" 2>/dev/null
	case $r in
	status=ok*) echo "$label $r" >>"$OUTF" ;;
	*) echo "$label status=na reason=$r: $(tail -qn1 "$LOG/s.log" \
		"$LOG/c.log" | tr -s '\n' ' ' | cut -c1-160)" >>"$OUTF" ;;
	esac
	tail -n1 "$OUTF"
}
