#!/usr/bin/env bash
# Issue 7: tail latency under loss, kcpx with and without its tail options, kcptun, TCP.
#   latency.sh [rr|bulk|all]     (default all; needs root, kcptun, iperf3, make tools)
#
# One lane per contender, every lane impaired the same way (tools/lib/wan.sh, linkem):
#
#   lane L:  [ a: rr -c / iperf3 -c, tunnel client ] == linkem (--both delay,loss) ==
#            [ b: tunnel server, rr -s :7000, iperf3 -s ]
#   lanes:   0 tcp (cubic)   1 kcptun   2 kcpx-off   3 kcpx-timing   4 kcpx-on
#            5 kcpx-default   6 kcpx-native   7 kcpx-alt (only when asked for)
#            8 kcpx-nofec   9 kcpx-dup   10 kcpx-compat
#
# rr:   64-byte sequential request/response, LAT_N (1000) exchanges per point, all lanes at
#       once (each is a trickle), at 25 ms one way and LAT_LOSS (1 5 10) % loss each way.
#       Wire bytes per exchange come from linkem's counters.
# bulk: LAT_BULK_REPS (3) iperf3 transfers of LAT_BULK_T (5) s per contender in
#       LAT_BULK_CANDS, one after another, at 25 ms and each LAT_BULK_LOSS (0 5) %:
#       goodput, and wire bytes per goodput byte (the bandwidth overhead).
#       LAT_BULK_EXTRA: more flags for both tunnel ends in bulk runs (e.g. bigger windows:
#       kcptun's client default sndwnd 128 caps a 50 ms RTT at ~26 Mbit/s).
# All kcp contenders run kcptun's default settings (aes, fast, 10/3 FEC, its windows);
# the kcpx ones differ only in the options under test:
#   kcpx-off     --tlp=false --quickack=false --rtohygiene=false --fecflush 0
#   kcpx-timing  --tlp --quickack --rtohygiene --fecflush 0
#   kcpx-on      --tlp --quickack --rtohygiene --fecflush $LAT_FLUSH (10 ms)
#   kcpx-default no option flags: whatever kcpx's defaults are
#   kcpx-native  kcpx-on's options with --proto kcpx (the native protocol) at both ends
#   kcpx-compat  kcpx's defaults with --proto kcptun at both ends (kcptun's wire format,
#                where --fecflush does not act: only the timing options remain)
#   kcpx-nofec   --ds 0 --ps 0 with --tlp --quickack --rtohygiene (no FEC, so no flush)
#   kcpx-dup     kcpx-nofec plus --dupsmall $LAT_DUP (200): small datagrams sent twice
#   kcpx-alt     kcpx-on's options run by another build, $KCPX_ALT: A/B of a code change
#                (LAT_CANDS="kcpx-on kcpx-alt" KCPX_ALT=/path/to/kcpx)
# Results: one key=value line per measurement in $LAT_OUT/results.txt and a table on stdout.
# The tails are sensitive to CPU contention (late timers, a late linkem): on a shared
# machine run it as `nice -n -10 tools/latency.sh` (every contender alike) and note the load.
# The table gives each point's load average as seen at its end.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
WHAT=${1:-all}
OUT=${OUT:-build}
WAN_TAG=${WAN_TAG:-lat$$}
. tools/lib/wan.sh
need_root

KCPX=${KCPX:-$ROOT/$OUT/kcpx}
RR=$ROOT/$OUT/tools/rr
KEY=kcpx-latency
LAT_N=${LAT_N:-1000}
LAT_TMAX=${LAT_TMAX:-85}
LAT_DELAY=${LAT_DELAY:-25}
LAT_LOSS=${LAT_LOSS:-1 5 10}
LAT_FLUSH=${LAT_FLUSH:-10}
LAT_DUP=${LAT_DUP:-200}
LAT_BULK_T=${LAT_BULK_T:-5}
LAT_BULK_LOSS=${LAT_BULK_LOSS:-0 5}
LAT_BULK_REPS=${LAT_BULK_REPS:-3}
LAT_BULK_CANDS=${LAT_BULK_CANDS:-kcpx-off kcpx-on kcpx-native}
LAT_BULK_EXTRA=${LAT_BULK_EXTRA:-}
LAT_SEED=${LAT_SEED:-7}
LAT_OUT=${LAT_OUT:-$ROOT/$OUT/latency}
CANDS=${LAT_CANDS:-tcp kcptun kcpx-off kcpx-timing kcpx-on kcpx-default kcpx-native kcpx-compat kcpx-nofec kcpx-dup}
DEFAULT_C="--crypt aes --mode fast --mtu 1350 --sndwnd 128 --rcvwnd 512 --ds 10 --ps 3"
DEFAULT_S="--crypt aes --mode fast --mtu 1350 --sndwnd 1024 --rcvwnd 1024 --ds 10 --ps 3"
OFF="--tlp=false --quickack=false --rtohygiene=false --fecflush 0"
TIMING="--tlp --quickack --rtohygiene --fecflush 0"
ON="--tlp --quickack --rtohygiene --fecflush $LAT_FLUSH"

mkdir -p "$LAT_OUT"
RES=$LAT_OUT/results.txt
: >"$RES"
WORK=$(mktemp -d /tmp/kcpx-latency.XXXXXX)
on_cleanup "rm -rf '$WORK'"
log() { printf '  latency: %s\n' "$*" >&2; }

lane_of() {
	case $1 in
	tcp) echo 0 ;; kcptun) echo 1 ;; kcpx-off) echo 2 ;; kcpx-timing) echo 3 ;;
	kcpx-on) echo 4 ;; kcpx-default) echo 5 ;; kcpx-native) echo 6 ;; kcpx-alt) echo 7 ;;
	kcpx-nofec) echo 8 ;; kcpx-dup) echo 9 ;; kcpx-compat) echo 10 ;;
	*) echo 9 ;;
	esac
}

extra_flags() {
	case $1 in
	kcpx-off) echo "$OFF" ;; kcpx-timing) echo "$TIMING" ;; kcpx-on) echo "$ON" ;;
	kcpx-native) echo "$ON --proto kcpx" ;;
	kcpx-alt) echo "$ON" ;;
	kcpx-compat) echo "--proto kcptun" ;;
	kcpx-nofec) echo "$TIMING --ds 0 --ps 0" ;;
	kcpx-dup) echo "$TIMING --ds 0 --ps 0 --dupsmall $LAT_DUP" ;;
	esac
}

wire_bytes() { # bytes linkem forwarded on lane L, both directions
	wan_stats "$1" | awk '{ for (i = 4; i <= NF; i++) { split($i, kv, "=");
		if (kv[1] == "fwd_bytes") s += kv[2] } } END { print s + 0 }'
}

# tun_start CAND LANE PORT [FLAGS]: client in a on 127.0.0.1:12948, server in b ->
# 127.0.0.1:PORT, FLAGS added at both ends. Sets PIDS (client server) or returns 1.
PIDS=
tun_start() {
	local cand=$1 l=$2 port=$3 more=${4:-} cc sc xf i
	case $cand in
	kcptun) cc=kcptun-client sc=kcptun-server xf= ;;
	kcpx-alt) cc="${KCPX_ALT:?} client" sc="$KCPX_ALT server" xf=$(extra_flags "$cand") ;;
	kcpx-*) cc="$KCPX client" sc="$KCPX server" xf=$(extra_flags "$cand") ;;
	*) return 1 ;;
	esac
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$(wan_ns "$l" b)" $sc -l :29900 -t "127.0.0.1:$port" \
		--key "$KEY" $DEFAULT_S $xf $more >"$WORK/s-$l.log" 2>&1 &
	PIDS=$!
	track_pid $!
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$(wan_ns "$l" a)" $cc -l 127.0.0.1:12948 \
		-r "$(wan_ip "$l" b):29900" --key "$KEY" $DEFAULT_C $xf $more >"$WORK/c-$l.log" 2>&1 &
	PIDS="$PIDS $!"
	track_pid $!
	for ((i = 0; i < 60; i++)); do
		in_ns "$(wan_ns "$l" a)" ss -Hltn "sport = :12948" 2>/dev/null | grep -q . && return 0
		sleep 0.05
	done
	log "$cand did not start: $(tail -qn2 "$WORK/s-$l.log" "$WORK/c-$l.log" | tr '\n' ' ')"
	tun_stop
	return 1
}

tun_stop() {
	local p
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	sleep 0.3
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	PIDS=
}

rr_one() { # rr_one CAND LOSS OUTFILE (in a subshell, lanes in parallel)
	local cand=$1 loss=$2 of=$3 l host w0 w1 out got
	l=$(lane_of "$cand")
	PIDS=
	host=$(wan_ip "$l" b):7000
	if [ "$cand" != tcp ]; then
		tun_start "$cand" "$l" 7000 || {
			echo "kind=rr loss=$loss cand=$cand status=na" >"$of"
			return
		}
		host=127.0.0.1:12948
	fi
	w0=$(wire_bytes "$l")
	out=$(in_ns "$(wan_ns "$l" a)" timeout $((LAT_TMAX + 10)) "$RR" -c "$host" -n "$LAT_N" \
		-t "$LAT_TMAX" -q 64 -p 64 2>&1 | tail -n1)
	w1=$(wire_bytes "$l")
	[ "$cand" != tcp ] && tun_stop
	got=$(echo "$out" | sed -n 's/^rr n=\([0-9]*\).*/\1/p')
	if [ -z "$got" ] || [ "$got" = 0 ]; then
		echo "kind=rr loss=$loss cand=$cand status=na reason=${out:0:100}" >"$of"
		return
	fi
	echo "kind=rr loss=$loss cand=$cand status=ok ${out#rr } wire_per_ex=$(((w1 - w0) / got))" >"$of"
}

bulk_one() { # bulk_one CAND LOSS REP
	local cand=$1 loss=$2 rep=$3 l w0 w1 json r
	l=$(lane_of "$cand")
	json=$WORK/iperf-$l.json
	nsenter --net=/run/netns/"$(wan_ns "$l" b)" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
	local srv=$!
	track_pid $srv
	wait_tcp_port "$(wan_ns "$l" b)" 5201 5 2>/dev/null || return
	PIDS=
	local host=$(wan_ip "$l" b) port=5201 cc=(-C cubic)
	if [ "$cand" != tcp ]; then
		tun_start "$cand" "$l" 5201 "$LAT_BULK_EXTRA" || return
		host=127.0.0.1 port=12948 cc=()
	fi
	w0=$(wire_bytes "$l")
	in_ns "$(wan_ns "$l" a)" timeout $((LAT_BULK_T + 20)) iperf3 -c "$host" -p "$port" \
		-t "$LAT_BULK_T" -O 0 -J "${cc[@]}" >"$json" 2>&1
	w1=$(wire_bytes "$l")
	[ "$cand" != tcp ] && tun_stop
	kill "$srv" 2>/dev/null
	wait "$srv" 2>/dev/null
	r=$(python3 -c '
import json, sys
try:
    s = json.load(open(sys.argv[1]))["end"]["sum_received"]
    w = int(sys.argv[2])
    print("status=ok mbps=%.2f bytes=%d wire_ratio=%.4f" % (s["bytes"] * 8 / s["seconds"] / 1e6, s["bytes"], w / max(s["bytes"], 1)))
except Exception as e:
    print("status=na reason=%s" % str(e)[:80])
' "$json" $((w1 - w0)))
	echo "kind=bulk loss=$loss cand=$cand rep=$rep extra=${LAT_BULK_EXTRA// /_} $r" >>"$RES"
	log "$(tail -n1 "$RES")"
}

# All in a function: bash reads a script as it runs, so editing this file mid-run would
# otherwise break the run.
main() {
T0=$SECONDS
for c in $CANDS; do
	l=$(lane_of "$c")
	wan_up "$l" || exit 1
	nsenter --net=/run/netns/"$(wan_ns "$l" b)" "$RR" -s -l :7000 >/dev/null 2>&1 &
	track_pid $!
done

if [ "$WHAT" = all ] || [ "$WHAT" = rr ]; then
	for loss in $LAT_LOSS; do
		for c in $CANDS; do
			wan_linkem "$(lane_of "$c")" --both "delay=$LAT_DELAY,loss=$loss" \
				-s "$LAT_SEED" || exit 1
		done
		log "rr at ${LAT_DELAY} ms, $loss % loss ($((SECONDS - T0)) s)"
		pids=()
		for c in $CANDS; do
			rr_one "$c" "$loss" "$WORK/rr-$c.txt" &
			pids+=($!)
		done
		wait "${pids[@]}"
		for c in $CANDS; do
			echo "$(cat "$WORK/rr-$c.txt") load=$(cut -d' ' -f1 /proc/loadavg)" >>"$RES"
			log "$(cat "$WORK/rr-$c.txt")"
		done
	done
fi

if [ "$WHAT" = all ] || [ "$WHAT" = bulk ]; then
	for loss in $LAT_BULK_LOSS; do
		for c in $LAT_BULK_CANDS; do
			wan_linkem "$(lane_of "$c")" --both "delay=$LAT_DELAY,loss=$loss" \
				-s "$LAT_SEED" || exit 1
		done
		# interleaved, so that a busy spell of the shared machine hits all alike
		for ((rep = 1; rep <= LAT_BULK_REPS; rep++)); do
			for c in $LAT_BULK_CANDS; do
				bulk_one "$c" "$loss" "$rep"
			done
		done
	done
fi

# the table: one row per contender and point
python3 - "$RES" <<'EOF'
import sys, collections
rows = [dict(kv.split("=", 1) for kv in l.split() if "=" in kv) for l in open(sys.argv[1])]
print("%-12s %5s %6s %8s %8s %8s %8s %9s %5s" % ("contender", "loss", "n", "p50_ms", "p99_ms",
      "p99.9_ms", "max_ms", "wire/ex", "load"))
for r in rows:
    if r.get("kind") != "rr":
        continue
    if r.get("status") != "ok":
        print("%-12s %5s  n/a %s" % (r["cand"], r["loss"], r.get("reason", "")))
        continue
    print("%-12s %5s %6s %8s %8s %8s %8s %9s %5s" % (r["cand"], r["loss"], r["n"], r["p50_ms"],
          r["p99_ms"], r["p999_ms"], r["max_ms"], r["wire_per_ex"], r.get("load", "")))
bulk = collections.defaultdict(list)
for r in rows:
    if r.get("kind") == "bulk" and r.get("status") == "ok":
        bulk[(r["loss"], r["cand"])].append((float(r["mbps"]), float(r["wire_ratio"])))
if bulk:
    print("\nbulk: loss, contender, Mbit/s per run, mean, wire bytes per goodput byte")
    for (l, c), v in bulk.items():
        m = sum(x for x, _ in v) / len(v)
        w = sum(y for _, y in v) / len(v)
        print("%4s %-12s %-24s %7.2f %7.4f" % (l, c, " ".join("%.2f" % x for x, _ in v), m, w))
EOF
log "done in $((SECONDS - T0)) s; $RES"
}

main "$@"
exit
