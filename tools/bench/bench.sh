#!/usr/bin/env bash
# kcpx vs kcptun vs plain TCP over the same emulated links.
#   bench.sh full     10 links, the stages below and the bottleneck bench
#                     (tools/bench/bottleneck.sh): docs/BENCH.md, bench.png,
#                     docs/BENCH-BOTTLENECK.md, README.md's generated figures; about
#                     28 min on 2 quiet cores (docs/BENCH-TIME.md's estimate, and why
#                     the bench is shaped so; BENCH.md's "Time per part" says where
#                     the last run's minutes went)
#   bench.sh quick    3 points (< 2 min): $OUT/bench-quick/ (BENCH_DOCS=1: docs/)
#   bench.sh smoke    1 point, a few seconds, for `make check`: $OUT/bench-smoke/
#
# Every candidate gets its own lane, all lanes impaired the same way (see tools/lib/wan.sh):
#
#   lane L:  [ a: iperf3 -c, rr -c, tunnel client ] == linkem == [ b: tunnel server,
#                                                                 iperf3 -s, rr -s ]
#   lanes:   0 tcp   1 kcptun/default   2 kcpx/default   3 kcptun/tuned   4 kcpx/tuned
#            5 kcpx-xdp/tuned (`kcpx up IFACE`, when the binary has it)
#            6 kcpx-compat/default (kcpx speaking kcptun's wire format, --proto kcptun)
#
# kcpx/* speak kcpx's native protocol (the client's default --proto auto finds the kcpx
# server); kcpx-compat/default is the same binary in kcptun-compatible mode, on the links
# in $COMPAT_POINTS only (the whole grid: BENCH_COMPAT_POINTS=all).
#
# Bulk: one bounded iperf3 transfer per candidate, one after another (A -> B).
# Latency: rr's 64-byte sequential exchanges, all lanes at once (each is a trickle).
# Memory (full and quick; BENCH_RSS=0 skips it): tools/bench/rss.sh, peak RSS of kcpx and
# kcptun while 1,000 connections move 64 KiB each way through one tunnel.
# Backends (full and quick; BENCH_BACKENDS=0 skips it): tools/bench/backends.sh, the UDP
# backend against the XDP backend (--napi keep and threaded) on a bare veth pair.
# Fake TCP (full and quick; BENCH_FAKETCP=0 skips it): tools/bench/faketcp.sh, `--tcp`
# against the UDP mode and kcptun with and without --tcp on a bare veth pair, then on the
# linkem lanes of FAKETCP_LINKS (DELAY:LOSS like the grid's points; BENCH_FAKETCP_LINKS),
# FAKETCP_LINK_RUNS rounds on each (BENCH_FAKETCP_LINK_RUNS).
# Queues (full and quick; BENCH_QUEUES=0 skips it): tools/bench/queues.sh, `kcpx up` with
# one engine against two (one per RX queue) on a 2-queue bare veth pair, with how busy
# the machine's cores were.
# Flood (full and quick; BENCH_FLOOD=0 skips it): tests/selftests/test-xdp-flood.sh, the
# goodput during a spoofed flood against the goodput without, kcpx (XDP) and kcptun.
# CPU seconds per GB and peak RSS are the tunnel's two processes', from /proc.
# A candidate that fails is reported as n/a with the reason, never left out.
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
MODE=${1:-quick}
OUT=${OUT:-build}
. tools/lib/wan.sh
# shellcheck source=ticks.sh
. tools/bench/ticks.sh
need_root

KCPX=${KCPX:-$ROOT/$OUT/kcpx}
# `make bench` leaves this marker when its build of kcpx failed (tools/Makefile.inc)
KCPX_FAILED=$OUT/bench-kcpx-failed
[ "$KCPX" = "$ROOT/$OUT/kcpx" ] || KCPX_FAILED=/nonexistent
RR=$ROOT/$OUT/tools/rr
KEY=kcpx-bench
TUNED="--crypt none --mode fast3 --sndwnd 2048 --rcvwnd 2048 --nocomp --ds 0 --ps 0"
# kcptun's defaults, spelled out so that kcpx runs the same settings whatever its own
# defaults are (kcptun's client and server differ in their window defaults)
DEFAULT_C="--crypt aes --mode fast --mtu 1350 --sndwnd 128 --rcvwnd 512 --ds 10 --ps 3"
DEFAULT_S="--crypt aes --mode fast --mtu 1350 --sndwnd 1024 --rcvwnd 1024 --ds 10 --ps 3"
SEED=${BENCH_SEED:-42}
BURST_SPEC="ge=1/25/100/0" # Gilbert-Elliott: 3.8 % mean loss in bursts of mean 4 frames

case $MODE in
full)
	# 10 links: delay {0, 25, 75} x loss {0, 1, 5}, and 25 ms / 10 % (10 and 20 % loss
	# are in the bottleneck bench, 100 Mbit/s 25 ms, 3 runs each); the no-bottleneck
	# comparisons of issue 11 are on these. kcpx-compat and kcpx-xdp (the same engine as
	# kcpx/tuned, link-bound here; the backends are compared on the bare veth pair) and
	# the latency runs only where README.md quotes them and issue 7 measured.
	# docs/BENCH-TIME.md has the budget.
	POINTS=""
	for d in 0 25 75; do
		for l in 0 1 5; do POINTS="$POINTS $d:$l"; done
	done
	POINTS="$POINTS 25:10"
	BULK_T=3
	SETS="default tuned"
	COMPAT_POINTS="0:0 25:1 25:5 75:5"
	XDP_POINTS="0:0 25:1 25:5 75:5"
	# TCP cubic's bulk where it moves something; at 5 % loss and more it collapses
	# (the bottleneck bench measures that, 3 runs per cell). Its latency runs everywhere.
	TCP_POINTS="0:0 0:1 25:0 25:1 75:0 75:1"
	RR_POINTS="0:0 25:1 25:5 25:10 75:5"
	# one flood run (every `make check` runs the same test) and one round of --tcp on the
	# linkem lane (link-bound; issue 15's targets are on the bare pair): BENCH-TIME.md
	FLOOD=1
	BACKENDS=3
	FAKETCP=3
	FAKETCP_LINKS="25:1"
	FAKETCP_LINK_RUNS=1
	RSS=3
	QUEUES=3
	RESDIR=${BENCH_OUT:-$ROOT/docs}
	;;
quick)
	POINTS="0:0 25:1 25:5"
	BULK_T=2
	SETS="default tuned"
	COMPAT_POINTS=all
	XDP_POINTS=all
	TCP_POINTS=all
	RR_POINTS=all
	FLOOD=1
	BACKENDS=1
	FAKETCP=1
	FAKETCP_LINKS="25:1"
	FAKETCP_LINK_RUNS=1
	RSS=1
	QUEUES=1
	RESDIR=${BENCH_OUT:-$ROOT/$OUT/bench-quick}
	[ "${BENCH_DOCS:-0}" = 1 ] && RESDIR=$ROOT/docs
	;;
smoke)
	POINTS=${BENCH_POINTS:-5:1}
	BULK_T=1
	SETS="tuned"
	COMPAT_POINTS=all
	XDP_POINTS=all
	TCP_POINTS=all
	RR_POINTS=all
	FLOOD=0
	BACKENDS=0
	FAKETCP=0
	FAKETCP_LINKS=""
	FAKETCP_LINK_RUNS=0
	RSS=0
	QUEUES=0
	RESDIR=${BENCH_OUT:-$ROOT/$OUT/bench-smoke}
	;;
*)
	echo "usage: bench.sh full|quick|smoke" >&2
	exit 2
	;;
esac
[ -n "${BENCH_POINTS:-}" ] && POINTS=$BENCH_POINTS
COMPAT_POINTS=${BENCH_COMPAT_POINTS:-$COMPAT_POINTS}
[ "$COMPAT_POINTS" = all ] && COMPAT_POINTS=$POINTS
XDP_POINTS=${BENCH_XDP_POINTS:-$XDP_POINTS}
[ "$XDP_POINTS" = all ] && XDP_POINTS=$POINTS
RR_POINTS=${BENCH_RR_POINTS:-$RR_POINTS}
[ "$RR_POINTS" = all ] && RR_POINTS=$POINTS
TCP_POINTS=${BENCH_TCP_POINTS:-$TCP_POINTS}
[ "$TCP_POINTS" = all ] && TCP_POINTS=$POINTS
FLOOD=${BENCH_FLOOD:-$FLOOD} # how many runs of test-xdp-flood.sh
BACKENDS=${BENCH_BACKENDS:-$BACKENDS} # runs of backends.sh's three candidates
RSS=${BENCH_RSS:-$RSS}                # runs of rss.sh (1,000 connections, kcpx and kcptun)
FAKETCP=${BENCH_FAKETCP:-$FAKETCP}    # runs of faketcp.sh's four candidates (--tcp)
FAKETCP_LINKS=${BENCH_FAKETCP_LINKS-$FAKETCP_LINKS} # its linkem lanes after the bare pair
FAKETCP_LINK_RUNS=${BENCH_FAKETCP_LINK_RUNS:-$FAKETCP_LINK_RUNS} # runs on each of those
QUEUES=${BENCH_QUEUES:-$QUEUES}       # runs of queues.sh's two candidates (1 and 2 engines)

CANDS="tcp"
for s in $SETS; do CANDS="$CANDS kcptun/$s kcpx/$s"; done
# kcpx in kcptun's wire format, with kcptun's default flags
case " $SETS " in *" default "*) CANDS="$CANDS kcpx-compat/default" ;; esac
# kcpx-xdp: `kcpx up IFACE` (XDP + AF_XDP backend), tuned flags. BENCH_XDP=auto (default)
# adds it when the kcpx binary has `up`; 1 always (n/a with the reason if it cannot run).
# BENCH_NAPI=keep|auto|threaded: `kcpx up --napi` on those lanes (unset: kcpx's default).
case ${BENCH_XDP:-auto} in
1) CANDS="$CANDS kcpx-xdp/tuned" ;;
auto) "$KCPX" up --help >/dev/null 2>&1 && CANDS="$CANDS kcpx-xdp/tuned" ;;
esac
[ -n "${BENCH_CANDS:-}" ] && CANDS=$BENCH_CANDS

# Why kcpx cannot run, or nothing if it can.
KCPX_NA=""
if [ -e "$KCPX_FAILED" ] || [ ! -x "$KCPX" ]; then
	KCPX_NA="$KCPX is missing"
	if [ -e "$KCPX_FAILED" ]; then
		KCPX_NA="$OUT/kcpx did not build"
		first=$(grep -m1 -E 'error|Error' "$OUT/bench-kcpx-build.log" 2>/dev/null | cut -c1-120)
		[ -n "$first" ] && KCPX_NA="$KCPX_NA: $first"
	fi
fi

mkdir -p "$RESDIR"
WORK=$(mktemp -d /tmp/kcpx-bench.XXXXXX)
on_cleanup "rm -rf '$WORK'"
bench_python "$WORK" # for this script and every part it starts
# Run a private copy: kcpx is rebuilt by others while a bench runs.
KCPX_VER=""
if [ -x "$KCPX" ] && [ -z "$KCPX_NA" ]; then
	cp "$KCPX" "$WORK/kcpx" 2>/dev/null && KCPX=$WORK/kcpx
	KCPX_VER="$(stat -c '%y' "$KCPX" | cut -c1-19), $(sha1sum "$KCPX" | cut -c1-10)"
fi
RES=$WORK/results.txt
: >"$RES"
# Wall time per part of the bench, for BENCH.md's "Time per part" table: one line per
# measured stretch, `part=NAME secs=S what=TEXT`; report.py sums the lines of each NAME.
PARTS=$WORK/parts.txt
: >"$PARTS"
[ -n "${BENCH_BUILD_S:-}" ] &&
	echo "part=build secs=$BENCH_BUILD_S what=make deps tools kcpx before bench.sh" >>"$PARTS"
PART_T0=$EPOCHREALTIME
part_mark() { PART_T0=$EPOCHREALTIME; } # start timing a part
part_end() {                             # part_end NAME WHAT: the time since part_mark
	awk -v a="$PART_T0" -v b="$EPOCHREALTIME" -v n="$1" -v w="$2" \
		'BEGIN { printf "part=%s secs=%.1f what=%s\n", n, b - a, w }' >>"$PARTS"
	PART_T0=$EPOCHREALTIME
}

log() { printf '  bench: %s\n' "$*" >&2; }
rec() { # one result line: into the results, and shortened onto the terminal
	echo "$*" >>"$RES"
	log "$(echo "$*" | cut -c1-150)"
}

# rr counts: issue 7 measured >= 1000 exchanges at 25 ms one way with 1, 5 and 10 % loss;
# the full bench keeps 1000 at 5 % (README.md quotes it) and 400 at 1 and 10 %
rr_plan() { # rr_plan DELAY LOSS -> "COUNT MAX_SECONDS"
	case $MODE:$1:$2 in
	smoke:*) echo "30 10" ;;
	quick:0:*) echo "500 20" ;;
	quick:*) echo "250 25" ;;
	full:0:*) echo "400 10" ;;
	full:25:5) echo "1000 60" ;;
	full:25:1 | full:25:10) echo "400 30" ;;
	full:25:*) echo "200 30" ;;
	*) echo "100 20" ;;
	esac
}

link_spec() { # link_spec DELAY LOSS -> linkem --both SPEC
	local s="delay=$1"
	if [ "$2" = burst ]; then s="$s,$BURST_SPEC"; else s="$s,loss=$2"; fi
	echo "$s"
}

cand_lane() {
	case $1 in
	tcp) echo 0 ;; kcptun/default) echo 1 ;; kcpx/default) echo 2 ;;
	kcptun/tuned) echo 3 ;; kcpx/tuned) echo 4 ;; kcpx-xdp/*) echo 5 ;;
	kcpx-compat/*) echo 6 ;;
	*) echo 9 ;;
	esac
}

cand_flags() { # cand_flags CAND c|s
	case $1 in kcpx-compat/*) printf '%s ' "--proto kcptun" ;; esac
	case $1:$2 in
	*/tuned:*) echo "$TUNED" ;;
	*/default:c) echo "$DEFAULT_C" ;;
	*/default:s) echo "$DEFAULT_S" ;;
	esac
}

# ---- tunnels --------------------------------------------------------------------------
# tun_start CAND LANE TARGET_PORT: client in a listens on 127.0.0.1:12948, server in b on
# udp :29900 forwards to 127.0.0.1:TARGET_PORT. Sets TUN_C, TUN_S (pids) or TUN_NA.
TUN_C=
TUN_S=
TUN_NA=
tun_start() {
	local cand=$1 l=$2 port=$3 na nb ipb fc fs ccmd scmd i
	na=$(wan_ns "$l" a)
	nb=$(wan_ns "$l" b)
	ipb=$(wan_ip "$l" b)
	fc=$(cand_flags "$cand" c)
	fs=$(cand_flags "$cand" s)
	TUN_C=
	TUN_S=
	TUN_NA=
	case $cand in
	kcptun/*)
		ccmd="kcptun-client"
		scmd="kcptun-server"
		;;
	kcpx/* | kcpx-compat/*)
		[ -n "$KCPX_NA" ] && TUN_NA=$KCPX_NA && return 1
		ccmd="$KCPX client"
		scmd="$KCPX server"
		;;
	kcpx-xdp/*)
		# The XDP/AF_XDP backend: the same flags, on the lane's endpoint interfaces.
		[ -n "$KCPX_NA" ] && TUN_NA=$KCPX_NA && return 1
		if ! "$KCPX" up --help >/dev/null 2>&1; then
			TUN_NA="kcpx up (XDP backend) not in this build"
			return 1
		fi
		bpffs_mount
		on_cleanup "rm -rf /sys/fs/bpf/kcpx/$(wan_if "$l" a) /sys/fs/bpf/kcpx/$(wan_if "$l" b)"
		ccmd="$KCPX up $(wan_if "$l" a) ${BENCH_NAPI:+--napi $BENCH_NAPI} client"
		scmd="$KCPX up $(wan_if "$l" b) ${BENCH_NAPI:+--napi $BENCH_NAPI} server"
		;;
	*)
		TUN_NA="unknown candidate $cand"
		return 1
		;;
	esac
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$nb" $scmd -l ":29900" -t "127.0.0.1:$port" --key "$KEY" \
		$fs >"$WORK/tun-s-$l.log" 2>&1 &
	TUN_S=$!
	track_pid $TUN_S
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$na" $ccmd -l "127.0.0.1:12948" -r "$ipb:29900" --key "$KEY" \
		$fc >"$WORK/tun-c-$l.log" 2>&1 &
	TUN_C=$!
	track_pid $TUN_C
	for ((i = 0; i < 50; i++)); do
		if ! kill -0 $TUN_S 2>/dev/null || ! kill -0 $TUN_C 2>/dev/null; then
			sleep 0.1
			local st_s=running st_c=running
			kill -0 $TUN_S 2>/dev/null || { wait $TUN_S; st_s="exit $?"; }
			kill -0 $TUN_C 2>/dev/null || { wait $TUN_C; st_c="exit $?"; }
			TUN_NA="${cand%%/*} exited at start (server $st_s, client $st_c): $(tail -qn1 \
				"$WORK/tun-s-$l.log" "$WORK/tun-c-$l.log" | tr -s '\n' ' ' | cut -c1-160)"
			tun_stop
			return 1
		fi
		in_ns "$na" ss -Hltn "sport = :12948" 2>/dev/null | grep -q . && return 0
		sleep 0.05
	done
	TUN_NA="${cand%%/*} client never listened on 127.0.0.1:12948"
	tun_stop
	return 1
}

tun_stop() {
	local p i
	for p in $TUN_C $TUN_S; do kill -TERM "$p" 2>/dev/null; done
	for ((i = 0; i < 20; i++)); do
		kill -0 "${TUN_C:-0}" 2>/dev/null || kill -0 "${TUN_S:-0}" 2>/dev/null || break
		sleep 0.05
	done
	for p in $TUN_C $TUN_S; do kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	true
}

rss_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# link_counters L: "WIRE_BYTES EMU_DROPS FRAMES" so far on lane L, both directions.
# EMU_DROPS are frames linkem lost by itself (socket overflow, send errors), not by
# configuration; FRAMES are the frames it forwarded, i.e. delivered to the two ends.
link_counters() {
	wan_stats "$1" | awk '{ for (i = 4; i <= NF; i++) { split($i, kv, "=");
		if (kv[1] == "fwd_bytes") w += kv[2];
		if (kv[1] == "fwd") f += kv[2];
		if (kv[1] == "drop_rx" || kv[1] == "drop_tx") e += kv[2] } }
		END { print w + 0, e + 0, f + 0 }'
}

# ---- bulk -----------------------------------------------------------------------------
bulk_run() { # bulk_run DELAY LOSS CAND
	local d=$1 ls=$2 cand=$3 l na nb host port json srv c0 s0 w0 c1 s1 w1 e0 e1 rc r cc
	l=$(cand_lane "$cand")
	na=$(wan_ns "$l" a)
	nb=$(wan_ns "$l" b)
	json=$WORK/iperf-$l.json
	local base="kind=bulk delay=$d loss=$ls cand=$cand"
	TUN_C=
	TUN_S=
	# iperf3's server starts while the tunnel does
	nsenter --net=/run/netns/"$nb" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
	srv=$!
	track_pid $srv
	cc=()
	if [ "$cand" = tcp ]; then
		host=$(wan_ip "$l" b)
		port=5201
		cc=(-C cubic)
	else
		if ! tun_start "$cand" "$l" 5201; then
			rec "$base status=na reason=$TUN_NA"
			kill "$srv" 2>/dev/null
			return
		fi
		host=127.0.0.1
		port=12948
	fi
	if ! wait_tcp_port "$nb" 5201 5 2>/dev/null; then
		rec "$base status=na reason=iperf3 server did not start"
		[ -n "$TUN_C" ] && tun_stop
		kill "$srv" 2>/dev/null
		return
	fi
	read -r w0 e0 f0 <<<"$(link_counters "$l")"
	c0=0
	s0=0
	k0=0
	[ -n "$TUN_C" ] && c0=$(cpu_ticks "$TUN_C") && s0=$(cpu_ticks "$TUN_S")
	case $cand in kcpx-xdp/*) k0=$(napi_ticks "$(wan_if "$l" a)" "$(wan_if "$l" b)") ;; esac
	in_ns "$na" timeout --kill-after=2 $((BULK_T + 20)) iperf3 -c "$host" -p "$port" \
		-t "$BULK_T" -O 0 -J --connect-timeout 5000 "${cc[@]}" >"$json" 2>&1
	rc=$?
	c1=0
	s1=0
	k1=0
	local rc_kb=0 rs_kb=0
	if [ -n "$TUN_C" ]; then
		c1=$(cpu_ticks "$TUN_C")
		s1=$(cpu_ticks "$TUN_S")
		case $cand in kcpx-xdp/*) k1=$(napi_ticks "$(wan_if "$l" a)" "$(wan_if "$l" b)") ;; esac
		rc_kb=$(rss_kb "$TUN_C")
		rs_kb=$(rss_kb "$TUN_S")
	fi
	read -r w1 e1 f1 <<<"$(link_counters "$l")"
	local alive=1
	if [ -n "$TUN_C" ] && { [ -z "$c1" ] || [ -z "$s1" ]; }; then
		alive=0
	fi
	[ -n "$TUN_C" ] && tun_stop
	kill "$srv" 2>/dev/null
	wait "$srv" 2>/dev/null
	r=$(python3 - "$json" "$rc" <<'EOF'
import json, sys
path, rc = sys.argv[1], int(sys.argv[2])
try:
    j = json.load(open(path))
except Exception:
    txt = open(path, errors="replace").read().strip().replace("\n", " ")[:120]
    print("status=na reason=iperf3 exit %d%s" % (rc, (": " + txt) if txt else " (timed out)" if rc == 124 else ""))
    sys.exit()
if j.get("error"):
    print("status=na reason=iperf3: %s" % j["error"][:120])
    sys.exit()
s = j["end"].get("sum_received") or {}
b, t = s.get("bytes", 0), s.get("seconds", 0)
if not t:
    print("status=na reason=iperf3 reported no received data")
    sys.exit()
print("status=ok mbps=%.3f bytes=%d secs=%.3f" % (b * 8 / t / 1e6, b, t))
EOF
)
	if [ "$alive" = 0 ] && [ "${r#status=ok}" != "$r" ]; then
		r="status=na reason=${cand%%/*} died during the transfer"
	fi
	local bytes
	bytes=$(echo "$r" | sed -n 's/.*bytes=\([0-9]*\).*/\1/p')
	local extra="emu_drops=$((e1 - e0))"
	# which wire protocol the kcpx client settled on (it logs "kcpx protocol" for native)
	case $cand in
	kcpx*)
		if grep -q "kcpx protocol" "$WORK/tun-c-$l.log" 2>/dev/null; then
			extra="$extra proto=kcpx"
		else
			extra="$extra proto=kcptun"
		fi
		;;
	esac
	if [ -n "$bytes" ] && [ "$bytes" -gt 0 ]; then
		# datagrams per second into the two ends' engines: what linkem delivered
		extra="$extra pps=$(echo "$r" | awk -v f=$((f1 - f0)) '{ for (i = 1; i <= NF; i++)
			if ($i ~ /^secs=/) { split($i, kv, "="); if (kv[2] > 0) printf "%.0f", f / kv[2] } }')"
		extra="$extra wire_ratio=$(awk -v w=$((w1 - w0)) -v b="$bytes" 'BEGIN { printf "%.4f", w / b }')"
		if [ -n "$TUN_C" ]; then
			extra="$extra $(awk -v c=$((c1 - c0)) -v s=$((s1 - s0)) -v k=$((k1 - k0)) \
				-v b="$bytes" -v hz="$(getconf CLK_TCK)" 'BEGIN {
				printf "cpu_c=%.2f cpu_s=%.2f cpu_napi=%.2f cpu_s_per_gb=%.3f", c / hz,
				s / hz, k / hz, (c + s + k) / hz / (b / 1e9) }')"
			extra="$extra rss_c_kb=$rc_kb rss_s_kb=$rs_kb"
		fi
	fi
	# status first, reason (free text) always last
	case $r in
	*reason=*) rec "$base ${r%% reason=*} $extra reason=${r#* reason=}" ;;
	*) rec "$base $r $extra" ;;
	esac
}

# ---- latency --------------------------------------------------------------------------
rr_run() { # rr_run DELAY LOSS CAND COUNT MAX_S OUTFILE  (runs in a subshell, in parallel)
	local d=$1 ls=$2 cand=$3 n=$4 tmax=$5 of=$6 l na host out w0 w1 e0 e1 load
	l=$(cand_lane "$cand")
	na=$(wan_ns "$l" a)
	local base="kind=rr delay=$d loss=$ls cand=$cand"
	TUN_C=
	TUN_S=
	if [ "$cand" = tcp ]; then
		host=$(wan_ip "$l" b):7000
	else
		if ! tun_start "$cand" "$l" 7000; then
			echo "$base status=na reason=$TUN_NA" >"$of"
			return
		fi
		host=127.0.0.1:12948
	fi
	read -r w0 e0 _ <<<"$(link_counters "$l")"
	load=$(cut -d' ' -f1 /proc/loadavg)
	out=$(in_ns "$na" timeout --kill-after=2 $((tmax + 15)) "$RR" -c "$host" -n "$n" \
		-t "$tmax" -q 64 -p 64 2>&1 | tail -n1)
	read -r w1 e1 _ <<<"$(link_counters "$l")"
	[ -n "$TUN_C" ] && tun_stop
	case $out in
	"rr n=0"* | "")
		echo "$base status=na reason=rr: ${out:-no output}" >"$of"
		;;
	rr*)
		local got
		got=$(echo "$out" | sed -n 's/^rr n=\([0-9]*\).*/\1/p')
		echo "$base status=ok ${out#rr } wire_per_ex=$(((w1 - w0) / (got + 3))) emu_drops=$((e1 - e0)) load=$load" >"$of"
		;;
	*)
		echo "$base status=na reason=rr: $(echo "$out" | cut -c1-120)" >"$of"
		;;
	esac
}

# ---- run ------------------------------------------------------------------------------
T0=$SECONDS
log "mode $MODE: points$POINTS; candidates $CANDS"
[ -n "$KCPX_NA" ] && log "kcpx: n/a ($KCPX_NA)"
NPTS=$(echo $POINTS | wc -w)
NRR=0
for pt in $POINTS; do case " $RR_POINTS " in *" $pt "*) NRR=$((NRR + 1)) ;; esac; done
part_mark
for c in $CANDS; do
	l=$(cand_lane "$c")
	wan_up "$l" || {
		log "cannot build lane $l"
		exit 1
	}
	nsenter --net=/run/netns/"$(wan_ns "$l" b)" "$RR" -s -l :7000 >/dev/null 2>&1 &
	track_pid $!
done
part_end lanes "namespaces, veths and rr servers of $(echo $CANDS | wc -w) lanes"

for pt in $POINTS; do
	d=${pt%%:*}
	ls=${pt#*:}
	spec=$(link_spec "$d" "$ls")
	log "link: $spec ($((SECONDS - T0)) s)"
	# the candidates at this point: kcpx-compat only on $COMPAT_POINTS, kcpx-xdp only on
	# $XDP_POINTS
	PCANDS=""
	for c in $CANDS; do
		case $c:" $COMPAT_POINTS " in kcpx-compat/*:*" $pt "*) ;; kcpx-compat/*) continue ;; esac
		case $c:" $XDP_POINTS " in kcpx-xdp/*:*" $pt "*) ;; kcpx-xdp/*) continue ;; esac
		PCANDS="$PCANDS $c"
	done
	for c in $PCANDS; do
		wan_linkem "$(cand_lane "$c")" --both "$spec" -s "$SEED" || exit 1
	done
	part_end setup "linkem restarts on the lanes, $NPTS links"
	for c in $PCANDS; do
		case $c:" $TCP_POINTS " in tcp:*" $pt "*) ;; tcp:*) continue ;; esac
		bulk_run "$d" "$ls" "$c"
	done
	part_end bulk "$NPTS links x one $BULK_T s iperf3 per candidate"
	case " $RR_POINTS " in *" $pt "*) ;; *) continue ;; esac
	read -r n tmax <<<"$(rr_plan "$d" "$ls")"
	pids=()
	for c in $PCANDS; do
		rr_run "$d" "$ls" "$c" "$n" "$tmax" "$WORK/rr-$(cand_lane "$c").txt" &
		pids+=($!)
	done
	wait "${pids[@]}"
	for c in $PCANDS; do
		f=$WORK/rr-$(cand_lane "$c").txt
		if [ -s "$f" ]; then
			cat "$f" >>"$RES"
			log "$(cut -c1-150 "$f")"
		else
			echo "kind=rr delay=$d loss=$ls cand=$c status=na reason=harness: no result" >>"$RES"
		fi
	done
	part_end latency "$NRR links x rr's exchanges, the lanes at once"
done

# A harness script with its own namespaces (backends.sh, faketcp.sh, queues.sh): each
# gets COUNT rounds of RUNS runs, every run bounded by RUN_S seconds.
# stage_open FILE COUNT CAND: empties FILE; true when the stage is to run, else (COUNT 0,
# or no kcpx) false, having written why into FILE.
stage_open() {
	: >"$1"
	[ "$2" -gt 0 ] || return 1
	[ -z "$KCPX_NA" ] && return 0
	echo "kind=$(basename "$1" .txt) run=1 cand=$3 status=na reason=$KCPX_NA" >>"$1"
	return 1
}
# stage_run SCRIPT FILE COUNT RUNS RUN_S CONNS [VAR=VALUE...]: its lines into the log.
stage_run() {
	local script=$1 file=$2 count=$3 runs=$4 run_s=$5 conns=$6
	shift 6
	# shellcheck disable=SC2086
	env KCPX="$KCPX" "$@" timeout --kill-after=5 $((count * runs * run_s + 30)) \
		"tools/bench/$script" "$file" "$count" "$conns" $TUNED 2>&1 |
		while read -r x; do log "$x"; done
}

# XDP against UDP backend on a bare veth pair.
if stage_open "$WORK/backend.txt" "$BACKENDS" xdp; then
	log "backends: UDP against XDP on a bare veth pair, $BACKENDS x 3 runs ($((SECONDS - T0)) s)"
	part_mark
	stage_run backends.sh "$WORK/backend.txt" "$BACKENDS" 3 40 4
	part_end backends "bare veth pair, UDP vs XDP backends, $BACKENDS x 3 runs"
fi

# --tcp against UDP mode and kcptun --tcp on a bare veth pair, then over linkem lanes.
if stage_open "$WORK/faketcp.txt" "$FAKETCP" tcp; then
	log "faketcp: --tcp against UDP and kcptun --tcp on a bare veth pair, $FAKETCP x 4 runs ($((SECONDS - T0)) s)"
	part_mark
	stage_run faketcp.sh "$WORK/faketcp.txt" "$FAKETCP" 4 30 4
	part_end faketcp-bare "--tcp on a bare veth pair, $FAKETCP x 4 runs"
	for p in $FAKETCP_LINKS; do
		spec=$(link_spec "${p%%:*}" "${p##*:}")
		log "faketcp: the same over linkem $spec, $FAKETCP_LINK_RUNS x 4 runs ($((SECONDS - T0)) s)"
		stage_run faketcp.sh "$WORK/faketcp.txt" "$FAKETCP_LINK_RUNS" 4 30 4 FT_LINK="$spec" \
			FT_SEED="$SEED"
		part_end "faketcp-$p" "--tcp over linkem $spec, $FAKETCP_LINK_RUNS x 4 runs"
	done
fi

# One engine against two under `kcpx up` on a 2-queue veth pair.
if stage_open "$WORK/queues.txt" "$QUEUES" q1; then
	log "queues: kcpx up with 1 and 2 engines on a 2-queue veth pair, $QUEUES x 2 runs ($((SECONDS - T0)) s)"
	part_mark
	stage_run queues.sh "$WORK/queues.txt" "$QUEUES" 2 40 5
	part_end queues "kcpx up, 1 and 2 engines, $QUEUES x 2 runs"
fi

# Memory: N connections at once through one tunnel, kcpx and kcptun in the same run
# (tools/bench/rss.sh, its own namespaces); results in rss.txt.
: >"$WORK/rss.txt"
if [ "$RSS" -gt 0 ]; then
	part_mark
	for ((i = 1; i <= RSS; i++)); do
		log "rss run $i/$RSS: 1000 connections x 64 KiB each way ($((SECONDS - T0)) s)"
		KCPX=$KCPX RSS_RESULTS=$WORK/rss.txt RSS_RUN=$i timeout --kill-after=5 600 \
			tools/bench/rss.sh 1000 65536 2>&1 | while read -r x; do log "$x"; done
	done
	part_end rss "1,000 connections, kcpx and kcptun, $RSS runs"
fi

# Flood resilience: test-xdp-flood.sh's own setup (its namespaces, a bridge, a Python
# flooder), figures appended to flood.txt. Its PASS/FAIL is noted, not fatal to the bench.
: >"$WORK/flood.txt"
FLOOD_RC=""
if [ "$FLOOD" -gt 0 ]; then
	if [ -n "$KCPX_NA" ]; then
		echo "kind=flood name=kcpx status=na reason=$KCPX_NA" >>"$WORK/flood.txt"
	elif ! "$KCPX" up --help >/dev/null 2>&1; then
		echo "kind=flood name=kcpx status=na reason=kcpx up (XDP backend) not in this build" \
			>>"$WORK/flood.txt"
	else
		part_mark
		for ((i = 1; i <= FLOOD; i++)); do
			log "flood run $i/$FLOOD: tests/selftests/test-xdp-flood.sh ($((SECONDS - T0)) s)"
			: >"$WORK/flood-run.txt"
			KCPX=$KCPX FLOOD_RESULTS=$WORK/flood-run.txt timeout --kill-after=5 400 \
				tests/selftests/test-xdp-flood.sh >"$WORK/flood.log" 2>&1
			rc=$?
			FLOOD_RC="$FLOOD_RC $rc"
			grep -E '^ +(kcpx|kcptun|client)' "$WORK/flood.log" | while read -r x; do log "$x"; done
			[ -s "$WORK/flood-run.txt" ] || echo "kind=flood name=kcpx status=na" \
				"reason=test-xdp-flood.sh exit $rc: $(grep -m1 FAIL "$WORK/flood.log" |
					cut -c1-120)" >"$WORK/flood-run.txt"
			sed "s/^/run=$i /" "$WORK/flood-run.txt" >>"$WORK/flood.txt"
			grep -E '^(PASS|FAIL)' "$WORK/flood.log" | head -1 >>"$WORK/flood-verdicts.txt"
		done
		part_end flood "test-xdp-flood.sh, kcpx and kcptun, $FLOOD runs"
	fi
fi

# Someone else's microbenchmarks: quote what they print (full runs only, bounded).
if [ "$MODE" = full ] || [ "${BENCH_MICRO:-0}" = 1 ]; then
	: >"$WORK/micro.txt"
	part_mark
	for m in "$ROOT/$OUT"/tools/microbench/*; do
		[ -x "$m" ] || continue
		log "microbench $(basename "$m")"
		{
			echo "\$ $(basename "$m")"
			timeout 60 "$m" 2>&1 | tail -n 40
			echo
		} >>"$WORK/micro.txt"
	done
	part_end microbench "tools/microbench, each bounded to 60 s"
fi

# The bottleneck bench (issue 11): tools/bench/bottleneck.sh on a lane of its own, in
# full runs (BENCH_BOTTLENECK=0 skips it; 1 runs it in other modes too). Into docs/ only
# when this run writes docs/ (docs/BENCH-BOTTLENECK.md, docs/bottleneck.png).
BOTTLENECK=${BENCH_BOTTLENECK:-0}
[ "$MODE" = full ] && BOTTLENECK=${BENCH_BOTTLENECK:-1}
BN_RC=""
if [ "$BOTTLENECK" = 1 ]; then
	log "bottleneck: tools/bench/bottleneck.sh ($((SECONDS - T0)) s)"
	bn_docs=0
	[ "$RESDIR" = "$ROOT/docs" ] && bn_docs=1
	bn_dir=${BN_RESDIR:-$ROOT/$OUT/bottleneck}
	rm -f "$bn_dir/parts.txt"
	KCPX=$KCPX BN_DOCS=$bn_docs tools/bench/bottleneck.sh 2>&1 | while read -r x; do log "$x"; done
	BN_RC=${PIPESTATUS[0]}
	# its parts, named bottleneck-*, after ours; its tables and plot into BENCH.md too
	sed 's/^part=/part=bottleneck-/' "$bn_dir/parts.txt" >>"$PARTS" 2>/dev/null
	cp "$bn_dir/table.md" "$WORK/bottleneck.md" 2>/dev/null
	[ -f "$bn_dir/bottleneck.png" ] && [ "$RESDIR" != "$ROOT/docs" ] &&
		cp "$bn_dir/bottleneck.png" "$RESDIR/bottleneck.png"
fi

{
	echo "mode=$MODE"
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "kernel=$(uname -r)"
	echo "cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo) x $(nproc)"
	echo "kcptun=$(dpkg-query -W -f='${Version}' kcptun 2>/dev/null)"
	echo "git=$(git rev-parse --short HEAD 2>/dev/null)"
	echo "bulk_t=$BULK_T"
	echo "seed=$SEED"
	echo "burst=$BURST_SPEC"
	echo "tuned=$TUNED"
	echo "default_c=$DEFAULT_C"
	echo "default_s=$DEFAULT_S"
	echo "elapsed=$((SECONDS - T0))"
	echo "kcpx_na=$KCPX_NA"
	echo "kcpx_bin=$KCPX_VER"
	echo "compat_points=$COMPAT_POINTS"
	echo "xdp_points=$XDP_POINTS"
	echo "rr_points=$RR_POINTS"
	echo "tcp_points=$TCP_POINTS"
	echo "all_points=$POINTS"
	echo "flood=$FLOOD"
	echo "flood_rc=$FLOOD_RC"
	echo "flood_test=$({ tr '\n' ' ' <"$WORK/flood-verdicts.txt"; } 2>/dev/null)"
	echo "bottleneck=$BOTTLENECK"
	echo "bottleneck_rc=$BN_RC"
	echo "build_s=${BENCH_BUILD_S:-}"
} >"$WORK/meta.txt"
python3 tools/bench/report.py "$WORK" "$RESDIR"
# A full run into docs/ refreshes README.md's generated blocks from the two reports
# (tools/bench/readme.py; blocks whose figures are missing keep their text, named here).
if [ "$MODE" = full ] && [ "$RESDIR" = "$ROOT/docs" ] && [ "$BOTTLENECK" = 1 ]; then
	python3 tools/bench/readme.py README.md docs/BENCH.md docs/BENCH-BOTTLENECK.md ||
		log "README.md: some generated blocks were not refreshed (above)"
fi
