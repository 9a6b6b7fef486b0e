#!/usr/bin/env bash
# make interop: the full kcpx <-> kcptun matrix (tests/interop/matrix.txt, or the case
# files given as arguments), then the results as a markdown table.
#
#   [ A ] client (kcpx | kcptun) ==udp, LOSS% drop each way== server (kcptun | kcpx) [ B ]
#
#   INTEROP_FILTER=regex   only the cases whose line matches (e.g. 'kt2kx.*salsa20')
#   IO_SIZE=bytes          per transfer (default 16 MiB)
#   INTEROP_KEEP=1         keep the daemons' logs     INTEROP_PCAP=1  tcpdump each case
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
interop_setup
t0=$SECONDS
[ $# -gt 0 ] || set -- "$here/matrix.txt"
for f in "$@"; do
	interop_table "$f"
done
rc=0
interop_summary || rc=1
echo "total $((SECONDS - t0)) s"
exit $rc
