#!/usr/bin/env bash
# kcpx up with one and with two engines (one per RX queue): goodput and CPU per GB on a
# 2-queue bare veth pair, no emulator between.
#
#   queues.sh OUT RUNS SECS [FLAGS...]
#
#   [ ns a: iperf3 -c -P STREAMS, kcpx client --conn CONN --threads 2 (UDP) ]
#        ==== veth, 2 RX/TX queues: the kernel puts each client UDP port on a TX queue,
#             the veth hands its datagrams to the same RX queue of the peer ====
#   [ ns b: kcpx up IF_B --xdp-mode native server --threads N (N = 1, 2; 2 is the default
#           on 2 queues and 2 cores), iperf3 -s ]
#
# Candidates q1 and q2 (server engines N = 1, 2), interleaved RUNS times, each one bounded
# iperf3 transfer of SECS with STREAMS (default 4) parallel connections over CONN (default
# 8) sessions (8 ports: the chance that all land on one queue is 1/128). The client is the
# same for both. FLAGS go to both ends. One line per run into OUT: goodput, CPU seconds of
# the two daemons (every thread), CPU per GB. On a veth the kernel's receive work for a
# datagram runs in the sender's context, so each daemon's CPU includes its peer's
# receive path. A kind=queues-machine line follows each run: how busy the machine's cores
# were meanwhile (iperf3 and anything else running included).
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=pair.sh
. tools/bench/pair.sh
pair_args "$@"
NETNS_TAG=${NETNS_TAG:-kxq$$}
STREAMS=${STREAMS:-4}
CONN=${CONN:-8}
# shellcheck source=../../tests/lib/netns.sh
. tests/lib/netns.sh
work_dir queues
LOG=$work
bpffs_mount
NETNS_QUEUES=2 netns_pair
on_cleanup "in_b $KCPX down $IF_B"

# jiffies the machine's cores were busy and in all, from /proc/stat's first line
busy_total() {
	awk '/^cpu /{ t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

one() { # one CAND RUN
	local cand=$1 run=$2 cli srv extra=() iperf_extra=(-P "$STREAMS") b0 t0 b1 t1
	cli=("$KCPX" client --conn "$CONN" --threads 2)
	srv=("$KCPX" up "$IF_B" --xdp-mode native server --threads "${cand#q}")
	read -r b0 t0 < <(busy_total)
	pair_one "kind=queues streams=$STREAMS conn=$CONN run=$run cand=$cand"
	# how busy both cores were over the whole run (daemons' start and stop included):
	# near 100 % means the cores, not the engines, set the pace
	read -r b1 t1 < <(busy_total)
	echo "kind=queues-machine run=$run cand=$cand busy_pct=$(((b1 - b0) * 100 / (t1 - t0)))" >>"$OUTF"
}

pair_rounds q1 q2
