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
# shellcheck source=pair.sh
. tools/bench/pair.sh
pair_args "$@"
NETNS_TAG=${NETNS_TAG:-kxth$$}
STREAMS=${STREAMS:-4}
CONN=${CONN:-2}
# shellcheck source=../../tests/lib/netns.sh
. tests/lib/netns.sh
work_dir threads
LOG=$work
netns_pair

one() { # one CAND RUN
	local cand=$1 run=$2 cli srv extra=() iperf_extra=(-P "$STREAMS")
	cli=("$KCPX" client --conn "$CONN" --threads "${cand#t}")
	srv=("$KCPX" server --threads "${cand#t}")
	pair_one "kind=threads streams=$STREAMS conn=$CONN run=$run cand=$cand"
}

pair_rounds t1 t2
