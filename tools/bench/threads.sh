#!/usr/bin/env bash
# --threads: goodput and CPU per GB of kcpx client|server (UDP sockets) with 1 and with 2
# engine threads at each end, on one bare veth pair, no emulator between.
#
#   threads.sh OUT RUNS SECS [FLAGS...]
#
#   [ ns a: iperf3 -c -P STREAMS, kcpx client --conn CONN --threads N ] ==== veth ====
#   [ ns b: kcpx server --threads N, iperf3 -s ]
#
# Candidates t1 and t2 (N = 1, 2), interleaved RUNS times, each one bounded iperf3
# transfer of SECS with STREAMS (default 4) parallel connections over CONN (default 2)
# sessions. FLAGS go to both ends. One line per run into OUT: goodput, CPU seconds of the
# two daemons (every thread), CPU per GB. On a veth the kernel's receive work for a
# datagram runs in the sender's context, so each daemon's CPU includes its peer's
# receive path.
set -u
cd "$(dirname "$0")/../.." || exit 1
OUTF=$1
RUNS=$2
SECS=$3
shift 3
FLAGS=("$@")
KCPX=${KCPX:-$PWD/build/kcpx}
NETNS_TAG=${NETNS_TAG:-kxth$$}
STREAMS=${STREAMS:-4}
CONN=${CONN:-2}
# shellcheck source=../../tests/lib/netns.sh
. tests/lib/netns.sh
need_root
netns_pair
LOG=$(mktemp -d /tmp/kcpx-threads.XXXXXX)
on_cleanup "rm -rf '$LOG'"

# shellcheck source=ticks.sh
. tools/bench/ticks.sh

one() { # one CAND RUN
	local cand=$1 run=$2 cli srv c s c0 s0 c1 s1 i rc r
	cli=("$KCPX" client --conn "$CONN" --threads "${cand#t}")
	srv=("$KCPX" server --threads "${cand#t}")
	in_b iperf3 -s -p 9000 -1 >/dev/null 2>&1 &
	local ipsrv=$!
	track_pid $ipsrv
	nsenter --net=/run/netns/"$NS_B" "${srv[@]}" -l :4000 -t 127.0.0.1:9000 --key bench \
		--quiet "${FLAGS[@]}" >"$LOG/s.log" 2>&1 &
	s=$!
	track_pid $s
	nsenter --net=/run/netns/"$NS_A" "${cli[@]}" -l 127.0.0.1:8388 -r "$IP_B:4000" \
		--key bench --quiet "${FLAGS[@]}" >"$LOG/c.log" 2>&1 &
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
		in_a timeout --kill-after=2 $((SECS + 15)) iperf3 -c 127.0.0.1 -p 8388 -t "$SECS" \
			-P "$STREAMS" -O 0 -J --connect-timeout 5000 >"$LOG/ip.json" 2>&1
		rc=$?
		c1=$(cpu_ticks $c) s1=$(cpu_ticks $s)
		if [ -z "$c1" ] || [ -z "$s1" ]; then
			r="a daemon died during the transfer"
		else
			r=$(python3 - "$LOG/ip.json" "$rc" $((c1 - c0)) $((s1 - s0)) \
				"$(getconf CLK_TCK)" <<'EOF'
import json, sys
path, rc, c, s, hz = sys.argv[1], *map(int, sys.argv[2:])
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
print("status=ok mbps=%.1f bytes=%d secs=%.3f cpu_c=%.2f cpu_s=%.2f cpu_s_per_gb=%.3f"
      % (b * 8 / t / 1e6, b, t, c / hz, s / hz, (c + s) / hz / (b / 1e9)))
EOF
)
		fi
	fi
	kill -TERM $c $s 2>/dev/null
	for ((i = 0; i < 40; i++)); do
		kill -0 $c 2>/dev/null || kill -0 $s 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL $c $s $ipsrv 2>/dev/null
	wait $c $s $ipsrv 2>/dev/null
	case $r in
	status=ok*) echo "kind=threads streams=$STREAMS conn=$CONN run=$run cand=$cand $r" >>"$OUTF" ;;
	*) echo "kind=threads streams=$STREAMS conn=$CONN run=$run cand=$cand status=na reason=$r: $(tail -qn1 "$LOG/s.log" \
		"$LOG/c.log" | tr -s '\n' ' ' | cut -c1-160)" >>"$OUTF" ;;
	esac
	tail -n1 "$OUTF"
}

for ((run = 1; run <= RUNS; run++)); do
	for cand in t1 t2; do
		one $cand "$run"
	done
done
