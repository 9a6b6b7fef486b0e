#!/usr/bin/env bash
# Bottleneck bench (issue 11): who fills a real bottleneck without flooding its queue.
#
#   [ a: iperf3 -c, rr -c, tunnel clients ] == linkem == [ b: tunnel servers, iperf3 -s, rr -s ]
#   linkem --both delay=D,rate=R,loss=L  (its default 50 ms tail-drop queue)
#
# Per link and candidate: one iperf3 bulk A -> B for BN_T seconds through a tunnel (or
# plain TCP), and during it rr's 64-byte exchanges through a second tunnel of the same kind
# (plain TCP for the TCP candidates). Reported: goodput, frames linkem dropped at its
# queue per frame that entered the link (both directions), RPC p50/p99 during the bulk,
# CPU seconds per GB of the tunnel's processes.
#
#   bottleneck.sh                    the issue's cells: 100 Mbit/s, 25 ms, 1/5/10/20 % loss,
#                                    four more cells of its grid and the fairness runs
#   BN_LINKS="R:D:L ..."             other cells (rate in Mbit/s, one-way ms, loss %)
#   BN_CANDS="tcp-bbr kcpx ..."      a subset of candidates; BN_T=seconds of bulk (8)
#   BN_GRID_T=S                      seconds of bulk in the grid cells (BN_T's)
#   BN_RUNS=N                        runs of everything (3), in rounds: each round runs
#                                    every cell once; the tables show median (min-max)
#   BN_ONCE="CAND[@L] ..."           candidates of the first round only (kcpx-off); with
#                                    @L in the cells of L % loss or more (tcp-cubic@5)
#   BN_TRACE=DIR                     kcpx cells: status of both ends every second (below)
#   BN_GRID="R:D:L ..."              more cells, for tcp-cubic tcp-bbr kcptun kcpx only
#                                    ("" for none; by default 4 corners of the issue's grid)
#   BN_FAIR="R:D:L:X+Y[@1] ..."      fairness runs: candidates X and Y, two bulks at once
#                                    through cell R:D:L ("" for none); @1: first round only
# Candidates: tcp-cubic, tcp-bbr, kcptun and kcpx with `--mode fast3 --sndwnd 1024
# --rcvwnd 1024` (else defaults: aes, FEC 10/3, compression), kcpx-off (the same with
# --cc off: kcpx before the controller), kcpx-kdef (kcptun's default flags; 1 % cells).
# Writes $OUT/bottleneck/results.txt and table.md (BN_RESDIR=DIR: there instead; BN_DOCS=1:
# docs/BENCH-BOTTLENECK.md too).
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
OUT=${OUT:-build}
# shellcheck source=../lib/wan.sh
. tools/lib/wan.sh
# shellcheck source=ticks.sh
. tools/bench/ticks.sh
need_root

KCPX=${KCPX:-$ROOT/$OUT/kcpx}
RR=$ROOT/$OUT/tools/rr
KEY=kcpx-bench
# 8 s bulks: shorter ones change what is measured (docs/BENCH-TIME.md compares 5 s
# with 8 s); BN_GRID_T sets the grid cells' apart
BN_T=${BN_T:-8}
GRID_T=${BN_GRID_T:-$BN_T}
T=$BN_T # the running cell's bulk
BN_RUNS=${BN_RUNS:-3}
LINKS=${BN_LINKS-"100:25:1 100:25:5 100:25:10 100:25:20"}
CANDS=${BN_CANDS-"tcp-cubic tcp-bbr kcptun kcpx-off kcpx kcpx-kdef"}
# more cells of the issue's grid (rate {20,100,500} x delay {5,25,75} x loss), with the
# issue's four candidates; not run when BN_LINKS or BN_CANDS picks the cells
if [ -n "${BN_LINKS+x}${BN_CANDS+x}" ]; then GRID=${BN_GRID-}; else
	GRID=${BN_GRID-"20:5:1 20:75:5 500:5:0 100:75:10"}
fi
GRID_CANDS="tcp-cubic tcp-bbr kcptun kcpx"
# candidates that run in the first round only: kcpx-off is kcpx before the controller, a
# reference the issue does not name; TCP cubic from 5 % loss up, where it moves under 2 %
# of the link in every run (docs/BENCH-TIME.md). BN_ONCE="" runs them in every round.
ONCE=${BN_ONCE-"kcpx-off tcp-cubic@5"}
# once CAND LOSS RUN: true when CAND sits out this run of a cell with LOSS % (BN_ONCE)
once() {
	local w
	[ "$3" -gt 1 ] || return 1
	for w in $ONCE; do
		case $w in
		"$1") return 0 ;;
		"$1"@*) awk -v a="$2" -v b="${w#*@}" 'BEGIN { exit !(a >= b) }' && return 0 ;;
		esac
	done
	return 1
}
# the issue names two kcpx flows and kcpx next to TCP cubic; next to BBR (at 1 %) and two
# kcptun flows are references, the clean BBR pair and kcptun's once
FAIR=${BN_FAIR-"100:25:0:kcpx+kcpx 100:25:0:kcpx+tcp-cubic 100:25:0:kcpx+tcp-bbr@1 \
100:25:1:kcpx+kcpx 100:25:1:kcpx+tcp-bbr 100:25:1:kcptun+kcptun@1"}
ISSUE="--mode fast3 --sndwnd 1024 --rcvwnd 1024"
KDEF_C="--crypt aes --mode fast --mtu 1350 --sndwnd 128 --rcvwnd 512 --ds 10 --ps 3"
KDEF_S="--crypt aes --mode fast --mtu 1350 --sndwnd 1024 --rcvwnd 1024 --ds 10 --ps 3"
SEED=${BENCH_SEED:-42}
RESDIR=${BN_RESDIR:-$ROOT/$OUT/bottleneck}
mkdir -p "$RESDIR"
WORK=$(mktemp -d /tmp/kcpx-bn.XXXXXX)
on_cleanup "rm -rf '$WORK'"
# a private copy: kcpx is rebuilt by others while this runs
cp "$KCPX" "$WORK/kcpx" && KCPX=$WORK/kcpx
bench_python "$WORK"
RES=$RESDIR/results.txt
: >"$RES"
log() { printf '  bottleneck: %s\n' "$*" >&2; }

# Wall time per part (`part=NAME secs=S what=TEXT`, summed by name): bench.sh quotes
# them in BENCH.md's "Time per part".
PARTS=$RESDIR/parts.txt
: >"$PARTS"
PART_T0=$EPOCHREALTIME
part_end() { # part_end NAME WHAT: the time since the last part_end (or the start)
	awk -v a="$PART_T0" -v b="$EPOCHREALTIME" -v n="$1" -v w="$2" \
		'BEGIN { printf "part=%s secs=%.1f what=%s\n", n, b - a, w }' >>"$PARTS"
	PART_T0=$EPOCHREALTIME
}

L=0
NA=$(wan_ns $L a)
NB=$(wan_ns $L b)
IPB=$(wan_ip $L b)
wan_up $L || exit 1
nsenter --net=/run/netns/"$NB" "$RR" -s -l :7000 >/dev/null 2>&1 &
track_pid $!

PIDS=()
# tun CAND IDX TARGET_PORT: start tunnel IDX (0 bulk, 1 rpc, 0 and 1 in a fairness run),
# client on 127.0.0.1:1294(8+IDX); `listening` waits for it
tun() {
	local cand=$1 i=$2 port=$3 c s fc fs
	case $cand in
	kcptun) c=kcptun-client s=kcptun-server fc=$ISSUE fs=$ISSUE ;;
	kcpx) c="$KCPX client" s="$KCPX server" fc=$ISSUE fs=$ISSUE ;;
	kcpx-off) c="$KCPX client" s="$KCPX server" fc="$ISSUE --cc off" fs="$ISSUE --cc off" ;;
	kcpx-kdef) c="$KCPX client" s="$KCPX server" fc=$KDEF_C fs=$KDEF_S ;;
	esac
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NB" $s -l ":$((29900 + i))" -t "127.0.0.1:$port" --key "$KEY" \
		$fs >"$WORK/s$i.log" 2>&1 &
	PIDS+=($!)
	track_pid $!
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NA" $c -l "127.0.0.1:$((12948 + i))" -r "$IPB:$((29900 + i))" \
		--key "$KEY" $fc >"$WORK/c$i.log" 2>&1 &
	PIDS+=($!)
	track_pid $!
}

# listening NS PORT...: until something listens on every TCP PORT in NS (5 s at most):
# one look at the namespace's sockets per 20 ms for all of them
listening() {
	local ns=$1 k p s miss
	shift
	for ((k = 0; k < 250; k++)); do
		s=" $(in_ns "$ns" ss -Hltn 2>/dev/null | awk '{ n = split($4, a, ":"); printf "%s ", a[n] }')"
		miss=0
		for p in "$@"; do [[ $s == *" $p "* ]] || miss=1; done
		[ $miss = 0 ] && return 0
		sleep 0.02
	done
	return 1
}

tun_stop_all() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	PIDS=()
}

# link_sum: "RX DROP_QUEUE" summed over both directions so far
link_sum() {
	wan_stats $L | awk '{ for (i = 4; i <= NF; i++) { split($i, kv, "=");
		if (kv[1] == "rx") r += kv[2]; if (kv[1] == "drop_queue") q += kv[2] } }
		END { print r + 0, q + 0 }'
}

# iperf_rate JSON: "mbps=M bytes=B" of the receiver's sum, or nothing when iperf3 failed
iperf_rate() {
	python3 - "$1" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1]))["end"]["sum_received"]
    print("mbps=%.2f bytes=%d" % (s["bytes"] * 8 / s["seconds"] / 1e6, s["bytes"]))
except Exception:
    print("")
EOF
}

cell() { # cell RATE DELAY LOSS CAND RUN
	local rate=$1 d=$2 ls=$3 cand=$4 run=$5 base host port rport cc=() srv rrp ticks0=0 ticks1=0
	local r0 q0 r1 q1 out rrout p
	base="rate=$rate delay=$d loss=$ls cand=$cand run=$run"
	# iperf3's server and both tunnels start while linkem restarts: nothing crosses the
	# link before the bulk connects (a tunnel opens its session on the first connection,
	# and ARQ would resend a datagram lost in the restart)
	nsenter --net=/run/netns/"$NB" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
	srv=$!
	track_pid $srv
	case $cand in
	tcp-*)
		host=$IPB port=5201 rport=$IPB:7000
		cc=(-C "${cand#tcp-}")
		;;
	*)
		tun "$cand" 0 5201
		tun "$cand" 1 7000
		host=127.0.0.1 port=12948 rport=127.0.0.1:12949
		;;
	esac
	if ! wan_linkem $L --both "delay=$d,rate=${rate}m,loss=$ls" -s "$SEED"; then
		tun_stop_all
		kill $srv 2>/dev/null
		wait $srv 2>/dev/null
		return 1
	fi
	listening "$NB" 5201
	if [ ${#PIDS[@]} -gt 0 ] && ! listening "$NA" 12948 12949; then
		echo "$base status=na reason=tunnel did not start" >>"$RES"
		tun_stop_all
		kill $srv 2>/dev/null
		wait $srv 2>/dev/null
		return
	fi
	read -r r0 q0 <<<"$(link_sum)"
	ticks0=$(cpu_ticks "${PIDS[@]}")
	# the RPCs start once the bulk runs and stop before it ends
	(
		sleep 1
		in_ns "$NA" timeout $((T + 10)) "$RR" -c "$rport" -n 100000 -t $((T - 2)) \
			-q 64 -p 64 -w 3 2>&1 | tail -n1 >"$WORK/rr.txt"
	) &
	rrp=$!
	# BN_STATUS=1: what the tunnels' controllers believe, mid-bulk (for the log)
	if [ "${BN_STATUS:-0}" = 1 ] && [ "${cand#kcpx}" != "$cand" ]; then
		(
			sleep $((T / 2))
			for p in "${PIDS[@]}"; do "$KCPX" status "$p" 2>/dev/null; done | grep -A1 " up " >&2
		) &
	fi
	# BN_TRACE=DIR: every second, both ends' `kcpx status --json`, linkem's counters and the
	# namespaces' UDP counters, into DIR/trace-CAND-LOSS-RUN.txt (with the tunnels' logs)
	local trp=
	if [ -n "${BN_TRACE:-}" ] && [ "${cand#kcpx}" != "$cand" ]; then
		mkdir -p "$BN_TRACE"
		(
			for ((k = 0; k <= T + 1; k++)); do
				echo "t=$k"
				for p in "${PIDS[@]}"; do
					"$KCPX" status --json "$p" 2>/dev/null
					kill -USR1 "$p" 2>/dev/null # SNMP counters into its log
				done
				wan_stats $L
				for n in "$NA" "$NB"; do echo "$n $(in_ns "$n" grep '^Udp:' /proc/net/snmp | tail -n1)"; done
				sleep 1
			done
		) >"$BN_TRACE/trace-$cand-$ls-$run.txt" 2>&1 &
		trp=$!
	fi
	in_ns "$NA" timeout --kill-after=2 $((T + 20)) iperf3 -c "$host" -p "$port" \
		-t "$T" -O 0 -J --connect-timeout 5000 "${cc[@]}" >"$WORK/iperf.json" 2>&1
	wait $rrp
	ticks1=$(cpu_ticks "${PIDS[@]}") || ticks1=$ticks0 # a tunnel died: its CPU is gone
	read -r r1 q1 <<<"$(link_sum)"
	if [ -n "$trp" ]; then
		kill "$trp" 2>/dev/null
		wait "$trp" 2>/dev/null
	fi
	tun_stop_all
	[ -n "$trp" ] && for f in s0 c0; do cp "$WORK/$f.log" "$BN_TRACE/$f-$cand-$ls-$run.log"; done
	kill $srv 2>/dev/null
	wait $srv 2>/dev/null
	out=$(iperf_rate "$WORK/iperf.json")
	rrout=$(cat "$WORK/rr.txt" 2>/dev/null)
	if [ -z "$out" ]; then
		echo "$base status=na reason=iperf3 failed" >>"$RES"
		return
	fi
	local bytes=${out##*bytes=}
	echo "$base status=ok $out qdrop=$((q1 - q0)) frames=$((r1 - r0)) $(awk -v t=$((ticks1 - ticks0)) \
		-v b="$bytes" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "cpu_s_per_gb=%.2f", t / hz / (b / 1e9) }') \
		$(echo "${rrout#rr }" | sed 's/\([a-z0-9_]*=\)/rpc_\1/g')" >>"$RES"
	log "$(tail -n1 "$RES" | cut -c1-160)"
}

# fair RATE DELAY LOSS PAIR RUN: two bulks at once through the bottleneck. PAIR is
# "X+Y", X and Y candidates (kcpx, kcptun: --mode fast3 windows 1024 as above; tcp-cubic,
# tcp-bbr); each runs its own tunnel (or TCP connection) to its own iperf3 server. Both
# start together; the first 2 s (the ramp) are left out of each flow's figure.
fair() {
	local rate=$1 d=$2 ls=$3 pair=$4 run=$5 base i cand r0 q0 r1 q1 out1 out2
	local srvs=() dst=() cl=()
	base="kind=fair rate=$rate delay=$d loss=$ls pair=$pair run=$run"
	# as in cell: servers and tunnels start while linkem restarts
	i=0
	for cand in ${pair/+/ }; do
		i=$((i + 1))
		nsenter --net=/run/netns/"$NB" iperf3 -s -1 -p $((5200 + i)) >/dev/null 2>&1 &
		srvs+=($!)
		track_pid $!
		case $cand in
		tcp-*) dst[i]="$IPB $((5200 + i)) -C ${cand#tcp-}" ;;
		*)
			tun "$cand" $((i - 1)) $((5200 + i))
			dst[i]="127.0.0.1 $((12947 + i))"
			cl+=($((12947 + i)))
			;;
		esac
	done
	if ! wan_linkem $L --both "delay=$d,rate=${rate}m,loss=$ls" -s "$SEED"; then
		tun_stop_all
		kill "${srvs[@]}" 2>/dev/null
		wait "${srvs[@]}" 2>/dev/null
		return 1
	fi
	listening "$NB" 5201 5202
	if [ ${#cl[@]} -gt 0 ] && ! listening "$NA" "${cl[@]}"; then
		echo "$base status=na reason=tunnel did not start" >>"$RES"
		tun_stop_all
		kill "${srvs[@]}" 2>/dev/null
		wait "${srvs[@]}" 2>/dev/null
		return
	fi
	cl=()
	read -r r0 q0 <<<"$(link_sum)"
	for i in 1 2; do
		# shellcheck disable=SC2086
		set -- ${dst[i]}
		in_ns "$NA" timeout --kill-after=2 $((BN_T + 22)) iperf3 -c "$1" -p "$2" \
			-t "$BN_T" -O 2 -J --connect-timeout 5000 "${@:3}" >"$WORK/fair$i.json" 2>&1 &
		cl+=($!)
	done
	wait "${cl[@]}"
	read -r r1 q1 <<<"$(link_sum)"
	tun_stop_all
	kill "${srvs[@]}" 2>/dev/null
	wait "${srvs[@]}" 2>/dev/null
	out1=$(iperf_rate "$WORK/fair1.json")
	out2=$(iperf_rate "$WORK/fair2.json")
	if [ -z "$out1" ] || [ -z "$out2" ]; then
		echo "$base status=na reason=iperf3 failed" >>"$RES"
		return
	fi
	out1=${out1%% *} out2=${out2%% *}
	echo "$base status=ok mbps1=${out1#mbps=} mbps2=${out2#mbps=} qdrop=$((q1 - q0))" \
		"frames=$((r1 - r0))" >>"$RES"
	log "$(tail -n1 "$RES" | cut -c1-160)"
}


# rotate N WORDS...: the words from the (N mod count)-th on, then the ones before, so
# that no candidate always runs first (right after linkem restarts) or last
rotate() {
	local n=$1
	shift
	n=$((n % $#))
	echo "${@:n+1}" "${@:1:n}"
}

log "links $LINKS; candidates $CANDS; grid $GRID ($GRID_T s); fairness $FAIR; $BN_T s bulk, $BN_RUNS run(s)"
# Rounds outermost: every cell and fairness pair once per round, so slow drift of the
# machine (other load, thermal) hits all candidates alike and each round is complete.
part_end setup "the lane, linkem and rr server"
NL=$(echo $LINKS | wc -w) NG=$(echo $GRID | wc -w) NF=$(echo $FAIR | wc -w)
for ((run = 1; run <= BN_RUNS; run++)); do
	for lk in $LINKS; do
		IFS=: read -r rate d ls <<<"$lk"
		# shellcheck disable=SC2086
		for c in $(rotate $((run - 1)) $CANDS); do
			[ "$c" = kcpx-kdef ] && [ "$ls" != 1 ] && continue
			once "$c" "$ls" "$run" && continue
			cell "$rate" "$d" "$ls" "$c" "$run"
		done
	done
	part_end cells "$NL cells of issue 11's path x $BN_RUNS runs of $BN_T s"
	T=$GRID_T
	for lk in $GRID; do
		IFS=: read -r rate d ls <<<"$lk"
		# shellcheck disable=SC2086
		for c in $(rotate $((run - 1)) $GRID_CANDS); do
			once "$c" "$ls" "$run" && continue
			cell "$rate" "$d" "$ls" "$c" "$run"
		done
	done
	T=$BN_T
	part_end grid "$NG grid cells x 4 candidates x $BN_RUNS runs of $GRID_T s"
	for fr in $FAIR; do
		case $fr in *@1) [ "$run" -gt 1 ] && continue ;; esac
		IFS=: read -r rate d ls pr <<<"${fr%@1}"
		fair "$rate" "$d" "$ls" "$pr" "$run"
	done
	part_end fairness "$NF pairs x $BN_RUNS runs of $BN_T s after 2 s of ramp"
done

python3 tools/bench/bnreport.py "$RES" "$RESDIR" >"$RESDIR/table.md"
cat "$RESDIR/table.md"
if [ "${BN_DOCS:-0}" = 1 ]; then
	{
		echo "# Bottleneck bench (tools/bench/bottleneck.sh)"
		echo
		gt=""
		[ "$GRID_T" != "$BN_T" ] && gt=" ($GRID_T s in the grid cells)"
		echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), $BN_T s bulk$gt, $BN_RUNS run(s) per cell in rounds (median, min-max),"
		echo "on $(nproc) cores; load average when it ended (1/5/15 min, the bench's own load"
		echo "included): $(cut -d' ' -f1-3 /proc/loadavg)."
		if [ -n "$ONCE" ] && [ "$BN_RUNS" -gt 1 ]; then
			ot=$(for w in $ONCE; do case $w in
				*@*) printf '%s from %s %% loss, ' "${w%@*}" "${w#*@}" ;;
				*) printf '%s, ' "$w" ;;
				esac; done)
			echo "In the first round only (the runs column shows it): ${ot%, }; docs/BENCH-TIME.md"
			echo "says why."
		fi
		echo "See docs/CONGESTION.md for what the columns mean and the targets."
		echo
		cat "$RESDIR/table.md"
	} >"$ROOT/docs/BENCH-BOTTLENECK.md"
	[ -f "$RESDIR/bottleneck.png" ] && cp "$RESDIR/bottleneck.png" "$ROOT/docs/bottleneck.png"
fi
