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
# FT_LINK=SPEC puts linkem (--both SPEC, e.g. delay=25,loss=1; seed FT_SEED, 42) between
# the two ends instead of the bare pair (tools/lib/wan.sh, lane 1); bench.sh runs the bare
# pair and then each lane of its FAKETCP_LINKS so.
# One line per run into OUT: goodput, CPU seconds of the two daemons, CPU per GB. The
# kernel's receive work for a datagram runs in the sender's context on a veth, so each
# daemon's CPU includes its peer's receive path (the XDP/TC translation included).
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=pair.sh
. tools/bench/pair.sh
pair_args "$@"
NETNS_TAG=${NETNS_TAG:-kxft$$}
FT_LINK=${FT_LINK:-}
if [ -n "$FT_LINK" ]; then
	WAN_TAG=$NETNS_TAG
	# shellcheck source=../lib/wan.sh
	. tools/lib/wan.sh
	work_dir faketcp
	wan_up 1 || exit 1
	wan_linkem 1 --both "$FT_LINK" -s "${FT_SEED:-42}" || exit 1
	NS_A=$(wan_ns 1 a) NS_B=$(wan_ns 1 b) IP_B=$(wan_ip 1 b)
else
	# shellcheck source=../../tests/lib/netns.sh
	. tests/lib/netns.sh
	work_dir faketcp
	netns_pair
fi
LOG=$work
on_cleanup "in_a $KCPX down >/dev/null 2>&1; in_b $KCPX down >/dev/null 2>&1"

one() { # one CAND RUN
	local cand=$1 run=$2 cli srv extra=() iperf_extra=()
	case $cand in
	udp | tcp) cli=("$KCPX" client) srv=("$KCPX" server) ;;
	kcptun*) cli=(kcptun-client) srv=(kcptun-server) ;;
	esac
	case $cand in tcp | kcptun-tcp) extra=(--tcp) ;; esac
	pair_one "kind=faketcp link=${FT_LINK:-bare} run=$run cand=$cand"
}

pair_rounds udp tcp kcptun kcptun-tcp
