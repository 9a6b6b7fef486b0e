#!/usr/bin/env bash
# --tcp (fake TCP) against kcpx's UDP mode and against kcptun's --tcp, on one bare veth
# pair, no emulator between.
#
#   faketcp.sh OUT RUNS SECS [FLAGS...]
#
#   [ ns a: iperf3 -c, tunnel client ] ==== veth ==== [ ns b: tunnel server, iperf3 -s ]
#
# Four candidates, interleaved RUNS times, each one bounded iperf3 transfer of SECS:
#   udp          kcpx client|server                 (UDP sockets)
#   tcp          kcpx client|server --tcp           (UDP sockets + TC/XDP fake TCP)
#   kcptun       kcptun-client|kcptun-server        (reference: kcptun over UDP)
#   kcptun-tcp   kcptun-client|kcptun-server --tcp  (tcpraw: raw sockets)
# FLAGS go to both ends of every candidate, so they must be kcptun flags.
# FT_LINK=SPEC puts linkem (--both SPEC, e.g. delay=25,loss=1) between the two ends
# instead of the bare pair (tools/lib/wan.sh, lane 1).
# One line per run into OUT: goodput, CPU seconds of the two daemons, CPU per GB. The
# kernel's receive work for a datagram runs in the sender's context on a veth, so each
# daemon's CPU includes its peer's receive path (the XDP/TC translation included).
set -u
cd "$(dirname "$0")/../.." || exit 1
OUTF=$1
RUNS=$2
SECS=$3
shift 3
FLAGS=("$@")
KCPX=${KCPX:-$PWD/build/kcpx}
NETNS_TAG=${NETNS_TAG:-kxft$$}
FT_LINK=${FT_LINK:-}
if [ -n "$FT_LINK" ]; then
	WAN_TAG=$NETNS_TAG
	# shellcheck source=../lib/wan.sh
	. tools/lib/wan.sh
	need_root
	wan_up 1 || exit 1
	wan_linkem 1 --both "$FT_LINK" || exit 1
	NS_A=$(wan_ns 1 a) NS_B=$(wan_ns 1 b) IP_B=$(wan_ip 1 b)
else
	# shellcheck source=../../tests/lib/netns.sh
	. tests/lib/netns.sh
	need_root
	netns_pair
fi
LOG=$(mktemp -d /tmp/kcpx-faketcp.XXXXXX)
on_cleanup "rm -rf '$LOG'; in_a $KCPX down >/dev/null 2>&1; in_b $KCPX down >/dev/null 2>&1"

# shellcheck source=ticks.sh
. tools/bench/ticks.sh

one() { # one CAND RUN
	local cand=$1 run=$2 cli srv extra=() c s c0 s0 c1 s1 i rc r
	case $cand in
	udp | tcp) cli=("$KCPX" client) srv=("$KCPX" server) ;;
	kcptun*) cli=(kcptun-client) srv=(kcptun-server) ;;
	esac
	case $cand in tcp | kcptun-tcp) extra=(--tcp) ;; esac
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
		in_a timeout --kill-after=2 $((SECS + 15)) iperf3 -c 127.0.0.1 -p 8388 -t "$SECS" \
			-O 0 -J --connect-timeout 5000 >"$LOG/ip.json" 2>&1
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
	status=ok*) echo "kind=faketcp link=${FT_LINK:-bare} run=$run cand=$cand $r" >>"$OUTF" ;;
	*) echo "kind=faketcp link=${FT_LINK:-bare} run=$run cand=$cand status=na reason=$r: $(tail -qn1 "$LOG/s.log" \
		"$LOG/c.log" | tr -s '\n' ' ' | cut -c1-160)" >>"$OUTF" ;;
	esac
	tail -n1 "$OUTF"
}

for ((run = 1; run <= RUNS; run++)); do
	for cand in udp tcp kcptun kcptun-tcp; do
		one $cand "$run"
	done
done
