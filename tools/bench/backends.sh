#!/usr/bin/env bash
# The XDP backend against the UDP backend on one bare veth pair, no emulator between.
#
#   backends.sh OUT RUNS SECS [FLAGS...]
#
#   [ ns a: iperf3 -c, tunnel client ] ==== veth ==== [ ns b: tunnel server, iperf3 -s ]
#
# Three candidates, interleaved RUNS times, each one bounded iperf3 transfer of SECS:
#   udp            kcpx client|server (UDP sockets)
#   xdp            kcpx up IFACE client|server (XDP + AF_XDP, --napi keep: the default)
#   xdp-threaded   the same with --napi threaded (the veths' NAPI polls in kernel threads)
# One line per run into OUT: goodput, CPU seconds of the two daemons and of the NAPI
# threads, CPU per GB (all three), and datagrams per second received by the two veth ends.
#
# Why a bare pair beside the bench's lanes: on a lane, linkem (one process forwarding
# between two more veth pairs) takes about a third of the two cores, and the kernel work
# of receiving a datagram runs in whoever sends it, so linkem pays for the tunnel's receive
# path in both backends. Here each daemon pays for what it sends, its peer's receive
# included, as on a veth into a container; nothing else competes for the cores.
set -u
cd "$(dirname "$0")/../.." || exit 1
OUTF=$1
RUNS=$2
SECS=$3
shift 3
FLAGS=("$@")
KCPX=${KCPX:-$PWD/build/kcpx}
NETNS_TAG=${NETNS_TAG:-kxbe$$}
NETNS_QUEUES=${NETNS_QUEUES:-2}
# shellcheck source=../../tests/lib/netns.sh
. tests/lib/netns.sh
need_root
export LIBXDP_SKIP_DISPATCHER=1
bpffs_mount
netns_pair
on_cleanup "in_a $KCPX down $IF_A >/dev/null 2>&1; in_b $KCPX down $IF_B >/dev/null 2>&1"
LOG=$(mktemp -d /tmp/kcpx-backends.XXXXXX)
on_cleanup "rm -rf '$LOG'"

# shellcheck source=ticks.sh
. tools/bench/ticks.sh
# shellcheck source=pair.sh
. tools/bench/pair.sh
rx_packets() { # datagrams both veth ends received so far
	{
		ip -n "$NS_A" -s -j link show "$IF_A"
		ip -n "$NS_B" -s -j link show "$IF_B"
	} | python3 -c 'import json, sys
print(sum(json.loads(l)[0]["stats64"]["rx"]["packets"] for l in sys.stdin if l.strip()))'
}

one() { # one CAND RUN
	local cand=$1 run=$2 up_a=() up_b=() c s c0 s0 k0 c1 s1 k1 p0 p1 i rc r
	case $cand in
	xdp) up_a=(up "$IF_A" --napi keep) up_b=(up "$IF_B" --napi keep) ;;
	xdp-threaded) up_a=(up "$IF_A" --napi threaded) up_b=(up "$IF_B" --napi threaded) ;;
	esac
	up_a+=(client)
	up_b+=(server)
	in_b iperf3 -s -p 9000 -1 >/dev/null 2>&1 &
	local srv=$!
	track_pid $srv
	nsenter --net=/run/netns/"$NS_B" "$KCPX" "${up_b[@]}" -l :4000 -t 127.0.0.1:9000 \
		--key bench --quiet "${FLAGS[@]}" >"$LOG/s.log" 2>&1 &
	s=$!
	track_pid $s
	nsenter --net=/run/netns/"$NS_A" "$KCPX" "${up_a[@]}" -l 127.0.0.1:8388 -r "$IP_B:4000" \
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
		c0=$(cpu_ticks $c) s0=$(cpu_ticks $s) k0=$(napi_ticks "$IF_A" "$IF_B") p0=$(rx_packets)
		in_a timeout --kill-after=2 $((SECS + 15)) iperf3 -c 127.0.0.1 -p 8388 -t "$SECS" \
			-O 0 -J --connect-timeout 5000 >"$LOG/ip.json" 2>&1
		rc=$?
		c1=$(cpu_ticks $c) s1=$(cpu_ticks $s) k1=$(napi_ticks "$IF_A" "$IF_B") p1=$(rx_packets)
		if [ -z "$c1" ] || [ -z "$s1" ]; then
			r="a daemon died during the transfer"
		else
			r=$(python3 - "$LOG/ip.json" "$rc" $((c1 - c0)) $((s1 - s0)) $((k1 - k0)) \
				$((p1 - p0)) "$(getconf CLK_TCK)" <<'EOF'
import json, sys
path, rc, c, s, k, p, hz = sys.argv[1], *map(int, sys.argv[2:])
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
print("status=ok mbps=%.1f bytes=%d secs=%.3f cpu_c=%.2f cpu_s=%.2f cpu_napi=%.2f "
      "cpu_s_per_gb=%.3f pps=%.0f" % (b * 8 / t / 1e6, b, t, c / hz, s / hz, k / hz,
                                     (c + s + k) / hz / (b / 1e9), p / t))
EOF
)
		fi
	fi
	pair_stop_record "kind=backend run=$run cand=$cand" "$r" $c $s $srv
}

for ((run = 1; run <= RUNS; run++)); do
	for cand in udp xdp xdp-threaded; do
		one $cand $run
	done
done
