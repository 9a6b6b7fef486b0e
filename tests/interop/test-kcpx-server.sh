#!/usr/bin/env bash
# make check: stock kcptun-client (20210922) against the kcpx server, a representative
# subset of tests/interop/matrix.txt (make interop runs all of it).
#
#   [ A ] tcpio -> kcptun-client ==udp, 3% drop each way==> kcpx server -> tcpio [ B ]
#
# Each case moves 16 MiB up and 16 MiB down (sha256 equal at both ends), the streams
# cases 16 MiB more over concurrent echo streams; FEC must have recovered shards at the
# receiving end; see lib.sh for every check. The --tcp case carries the datagrams as
# fake TCP both ways (kcptun's tcpraw framing, docs/INTEROP.md).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"
interop_setup
interop_table - <<'CASES'
kt2kx aes     comp   1 10/3 fast  0 3   # kcptun's defaults
kt2kx twofish nocomp 2 7/2  fast3 8 3
kt2kx 3des    comp   1 0/0  fast3 0 3
kt2kx aes     comp   2 10/3 fast  4 3 k:--fecflush k:0   # no FECErrs anywhere
kt2kx aes     comp   1 10/3 fast  4 3 --tcp   # fake TCP (tcpraw framing)
CASES
interop_summary
