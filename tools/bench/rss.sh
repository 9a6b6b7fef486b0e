#!/usr/bin/env bash
# Memory of the tunnel under many connections: kcpx against kcptun in the same run.
#
#   [ A ] manyconn run -> client :8388 ==udp (veth)== server :4000 [ B ] -> manyconn echo :9000
#
#   rss.sh [N] [SIZE] [-- extra flags for both ends of both tunnels]
#
# N connections (default 1000) are opened at once through one tunnel (UDP backend, each
# tunnel's default flags and a key), SIZE bytes (default 65536) go each way on every one
# and are checked. The RSS of both tunnel processes is sampled every 50 ms while the
# connections run; the line per candidate gives the peak of each and of their sum:
#   rss kcpx   n 1000 size 65536 server_kb S client_kb C sum_kb T idle_kb I xfer_s X
# idle_kb is the sum with one session up, before the run. A candidate that fails says why.
# RSS_RESULTS=FILE (and RSS_RUN=N) also append bench.sh's result lines there:
#   kind=rss run=N cand=kcpx n=1000 size=65536 server_kb=S client_kb=C sum_kb=T ...
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib/netns.sh
need_root
N=${1:-1000}
SIZE=${2:-65536}
shift 2 2>/dev/null || shift $#
[ "${1:-}" = "--" ] && shift
EXTRA=("$@")
MANY=$NETNS_TOP/tests/lib/manyconn.py
KEY=kcpx-rss-bench
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /tmp/kcpx-rss.XXXXXX)
on_cleanup "rm -rf $work"

netns_pair
in_b python3 "$MANY" echo 9000 & track_pid $!
wait_tcp_port "$NS_B" 9000

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# sample PID_S PID_C OUT: peak RSS of each and of the sum, until OUT.stop exists
sample() {
	local s=$1 c=$2 out=$3 ps=0 pc=0 pt=0 a b
	while [ ! -e "$out.stop" ]; do
		a=$(rss_kb "$s")
		b=$(rss_kb "$c")
		((a > ps)) && ps=$a
		((b > pc)) && pc=$b
		((a + b > pt)) && pt=$((a + b))
		sleep 0.05
	done
	echo "$ps $pc $pt" >"$out"
}

# run NAME PORT SERVER_CMD... -- CLIENT_CMD...
run() {
	local name=$1 port=$2 scmd=() ccmd=() spid cpid idle res xfer
	shift 2
	while [ "$1" != "--" ]; do scmd+=("$1"); shift; done
	shift
	ccmd=("$@")
	# nsenter execs the command: $! is the tunnel process itself
	nsenter --net=/run/netns/"$NS_B" "${scmd[@]}" >"$work/$name-s.log" 2>&1 & spid=$!
	track_pid $spid
	nsenter --net=/run/netns/"$NS_A" "${ccmd[@]}" >"$work/$name-c.log" 2>&1 & cpid=$!
	track_pid $cpid
	if ! wait_udp_port "$NS_B" "$port" 20 || ! wait_tcp_port "$NS_A" "$port" 20; then
		echo "rss $name n/a: the tunnel did not start"
		[ -n "${RSS_RESULTS:-}" ] && echo "kind=rss run=${RSS_RUN:-1} cand=$name n=$N" \
			"size=$SIZE status=na reason=the tunnel did not start" >>"$RSS_RESULTS"
		return 1
	fi
	# one connection first: the session and its handshake are made before we measure
	in_a python3 "$MANY" run 127.0.0.1 "$port" 1 16 --timeout 30 >/dev/null || {
		echo "rss $name n/a: no first connection"; return 1; }
	idle=$(($(rss_kb $spid) + $(rss_kb $cpid)))
	rm -f "$work/$name.rss" "$work/$name.rss.stop"
	sample $spid $cpid "$work/$name.rss" & local sp=$!
	res=$(in_a python3 "$MANY" run 127.0.0.1 "$port" "$N" "$SIZE" --timeout 240 2>&1)
	local rc=$?
	touch "$work/$name.rss.stop"
	wait $sp
	kill $spid $cpid 2>/dev/null
	wait $spid $cpid 2>/dev/null
	if [ $rc -ne 0 ]; then
		echo "rss $name n/a: $res"
		[ -n "${RSS_RESULTS:-}" ] && echo "kind=rss run=${RSS_RUN:-1} cand=$name n=$N" \
			"size=$SIZE status=na reason=$(echo "$res" | tail -1)" >>"$RSS_RESULTS"
		tail -5 "$work/$name-s.log" "$work/$name-c.log"
		return 1
	fi
	xfer=$(echo "$res" | awk '{print $8}')
	read -r a b t <"$work/$name.rss"
	echo "rss $name n $N size $SIZE server_kb $a client_kb $b sum_kb $t idle_kb $idle xfer_s $xfer"
	[ -n "${RSS_RESULTS:-}" ] && echo "kind=rss run=${RSS_RUN:-1} cand=$name n=$N size=$SIZE" \
		"server_kb=$a client_kb=$b sum_kb=$t idle_kb=$idle xfer_s=$xfer status=ok" \
		>>"$RSS_RESULTS"
	return 0
}

fail=0
run kcpx 8388 "$KCPX" server -l :8388 -t 127.0.0.1:9000 --key "$KEY" --quiet "${EXTRA[@]}" -- \
	"$KCPX" client -l 127.0.0.1:8388 -r "$IP_B:8388" --key "$KEY" --quiet "${EXTRA[@]}" ||
	fail=1
run kcptun 8389 kcptun-server -l :8389 -t 127.0.0.1:9000 --key "$KEY" --quiet -- \
	kcptun-client -l 127.0.0.1:8389 -r "$IP_B:8389" --key "$KEY" --quiet || fail=1
exit $fail
