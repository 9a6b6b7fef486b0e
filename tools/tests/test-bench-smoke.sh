#!/usr/bin/env bash
# Bench harness smoke test: one link point, a few seconds, same code path as `make bench`.
#
#   lane L:  [ lkmPID<L>a: iperf3 -c, rr -c, tunnel client ] == linkem (5 ms, 1 %) ==
#            [ lkmPID<L>b: tunnel server, iperf3 -s, rr -s ]      (one lane per candidate)
#
# 1. tcp and kcptun/tuned give goodput > 0 and 30 timed exchanges; kcpx/tuned (and
#    kcpx-xdp/tuned if present) give numbers or n/a with a reason; BENCH.md and bench.png
#    are written.
# 2. A kcpx that cannot start is reported as n/a with the reason, not dropped.
# 3. SIGTERM in the middle of a run leaves no namespace and no process behind.
# Each run is a session of its own and its namespaces carry its PID: both are checked
# after it is gone.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tools/tests/lib.sh
OUT=${OUT:-build}
export OUT
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root"
	exit 4
fi
make --no-print-directory tools >/dev/null || exit 1
test_tmp bench-smoke
leftovers() { # leftovers PID: namespaces or processes of bench run PID still around
	local n
	n=$(ip netns list | grep -cE "^lkm${1}[0-9][amb]( |$)")
	[ "$n" -eq 0 ] || echo "$n namespaces"
	# every run is its own session (setsid), so whatever it started shares its session id
	ps -eo sid=,pid=,comm= | awk -v s="$1" '$1 == s { printf "pid %s (%s) ", $2, $3 }'
}
line() { grep "kind=$1 .*cand=$2 " "$TMP/$3/BENCH.md"; }

# 1. one point, the smoke grid
BENCH_OUT=$TMP/a setsid ./tools/bench/bench.sh smoke >"$TMP/a.log" 2>&1 &
pid=$!
mkdir -p "$TMP/a"
wait $pid
rc=$?
cat "$TMP/a.log"
[ $rc -eq 0 ] && ok "bench smoke exit 0" || bad "bench smoke exit $rc"
for f in BENCH.md bench.png; do
	[ -s "$TMP/a/$f" ] && ok "$f written" || bad "$f missing"
done
for c in tcp kcptun/tuned; do
	l=$(line bulk "$c" a)
	mbps=$(echo "$l" | sed -n 's/.* mbps=\([0-9.]*\).*/\1/p')
	awk -v m="${mbps:-0}" 'BEGIN { exit !(m > 0) }' && ok "$c goodput $mbps Mbit/s" ||
		bad "$c goodput: $l"
	l=$(line rr "$c" a)
	echo "$l" | grep -q 'status=ok n=30 .*complete=1' && ok "$c 30 exchanges" ||
		bad "$c latency: $l"
done
# kcpx (and kcpx-xdp when the binary has `kcpx up`): numbers, or n/a with a reason
cands="kcpx/tuned"
grep -q "cand=kcpx-xdp/tuned " "$TMP/a/BENCH.md" && cands="$cands kcpx-xdp/tuned"
for c in $cands; do
	for k in bulk rr; do
		l=$(line $k "$c" a)
		if echo "$l" | grep -qE 'status=ok|status=na .*reason=..'; then
			ok "$c $k reported: $(echo "$l" | cut -c1-100)"
		else
			bad "$c $k missing or without a reason: $l"
		fi
	done
done
[ -z "$(leftovers $pid)" ] && ok "nothing left after the run" || bad "left: $(leftovers $pid)"

# 2. a kcpx that dies at start
BENCH_OUT=$TMP/b BENCH_CANDS="kcpx/tuned" KCPX=/bin/false setsid ./tools/bench/bench.sh smoke \
	>"$TMP/b.log" 2>&1 &
pid=$!
mkdir -p "$TMP/b"
wait $pid
l=$(line bulk kcpx/tuned b)
echo "$l" | grep -q 'status=na .*reason=kcpx exited at start' && ok "broken kcpx: n/a with reason" ||
	bad "broken kcpx not reported: $l"
grep -q 'n/a\[1\]: kcpx exited at start' "$TMP/b/BENCH.md" && ok "reason in BENCH.md" ||
	bad "no reason in BENCH.md"

# 3. SIGTERM mid-run
BENCH_OUT=$TMP/c BENCH_POINTS="25:1" setsid ./tools/bench/bench.sh smoke >"$TMP/c.log" 2>&1 &
pid=$!
# wait (up to 60 s, polling) until the run has its namespaces, then stop it mid-run
n=0
for _ in $(seq 600); do
	n=$(ip netns list | grep -cE "^lkm${pid}[0-9][amb]( |$)")
	[ "$n" -gt 0 ] && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
[ "$n" -gt 0 ] && ok "mid-run: $n namespaces up" || bad "mid-run: no namespaces to clean up"
kill -TERM $pid
wait $pid
# its children may still be exiting: poll (up to 10 s) until nothing is left
for _ in $(seq 100); do
	left=$(leftovers $pid)
	[ -z "$left" ] && break
	sleep 0.1
done
[ -z "$left" ] && ok "SIGTERM mid-run: nothing left" || bad "SIGTERM mid-run left $left"

echo "bench smoke: $fails failed"
[ "$fails" -eq 0 ]
