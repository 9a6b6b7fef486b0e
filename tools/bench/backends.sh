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
# shellcheck source=pair.sh
. tools/bench/pair.sh
pair_args "$@"
NETNS_TAG=${NETNS_TAG:-kxbe$$}
NETNS_QUEUES=${NETNS_QUEUES:-2}
# shellcheck source=../../tests/lib/netns.sh
. tests/lib/netns.sh
work_dir backends
LOG=$work
export LIBXDP_SKIP_DISPATCHER=1
bpffs_mount
netns_pair
on_cleanup "in_a $KCPX down $IF_A >/dev/null 2>&1; in_b $KCPX down $IF_B >/dev/null 2>&1"

rx_packets() { # datagrams both veth ends received so far
	{
		ip -n "$NS_A" -s -j link show "$IF_A"
		ip -n "$NS_B" -s -j link show "$IF_B"
	} | python3 -c 'import json, sys
print(sum(json.loads(l)[0]["stats64"]["rx"]["packets"] for l in sys.stdin if l.strip()))'
}

pair_more() { echo "$(napi_ticks "$IF_A" "$IF_B") $(rx_packets)"; }

one() { # one CAND RUN
	local cand=$1 run=$2 cli srv extra=() iperf_extra=()
	cli=("$KCPX") srv=("$KCPX")
	case $cand in
	xdp) cli+=(up "$IF_A" --napi keep) srv+=(up "$IF_B" --napi keep) ;;
	xdp-threaded) cli+=(up "$IF_A" --napi threaded) srv+=(up "$IF_B" --napi threaded) ;;
	esac
	cli+=(client)
	srv+=(server)
	pair_one "kind=backend run=$run cand=$cand"
}

pair_rounds udp xdp xdp-threaded
