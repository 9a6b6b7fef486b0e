#!/usr/bin/env bash
# `kcpx up --proto kcpx` on both ends with different FEC ratios (server 10/3, client 5/2)
# and a bridge that drops one data shard in ten each way: XDP must group each peer's
# shards by that peer's ratio (learnt from the headers), drop only parity nobody needs,
# and let every needed parity shard reach the daemon.
#
#   [ $NS_A ] tcpio multi -> kcpx up $IF_A client     [ $NS_B ] kcpx up $IF_B server
#             --ds 5 --ps 2 (XDP + AF_XDP)                      --ds 10 --ps 3 -> tcpio echo
#                  |                                                   |
#                  +--- $IF_MA [ $NS_M ] bridge, nft: 1 in 10 --- $IF_MB
#                                 data shards (flag 0xF1) dropped
#
# Asserted: every echoed byte intact; the bridge dropped data shards both ways; each end's
# XDP dropped unneeded parity of its peer's groups (with groups cut by our own ratio the
# server's XDP finds no 5/2 group complete and drops none: the test fails on that); each
# daemon rebuilt from parity (FECRecovered) at least half of the data shards lost toward it.
# (Before its decoder refused groups cut by a ratio the peer does not use, this transfer
# also broke: a rebuilt shard nobody sent reached smux, "smux protocol error".)
set -eu
NETNS_TAG=kfr$$
. "$(dirname "$0")/../lib/netns.sh"
work_dir fecratio
PORT=4000
KEY=fec-ratio-selftest
N=4
SIZE=$((4 << 20))
COMMON="--key $KEY --proto kcpx --nocomp --mode fast3 --sndwnd 1024 --rcvwnd 1024 --quiet"
[ -x "$KCPX" ] || { echo "missing $KCPX: run make first" >&2; exit 1; }
command -v nft >/dev/null || { echo "SKIP: no nft" >&2; exit 4; }

fail=0
bad() { echo "FAIL: $*"; fail=1; }

NS_M=${NETNS_TAG}m
IF_MA=${NETNS_TAG}ma IF_MB=${NETNS_TAG}mb
bpffs_mount
for ns in "$NS_A" "$NS_B"; do netns_add "$ns"; done
netns_bridge "$NS_M" A:"$IF_A":"$IF_MA":"$IP_A" B:"$IF_B":"$IF_MB":"$IP_B"
on_cleanup "in_a $KCPX down $IF_A; in_b $KCPX down $IF_B; rmdir /sys/fs/bpf/kcpx"
# the native header is 24 bytes, then seqid (4) and the FEC flag (le16 0x00F1 = data):
# bits 288..303 of the UDP header onwards
in_ns "$NS_M" nft -f - <<EOF
table bridge kfr {
	chain drop10 {
		type filter hook forward priority 0; policy accept;
		ether type ip udp dport $PORT @th,288,16 0xf100 numgen random mod 10 0 counter drop
		ether type ip udp sport $PORT @th,288,16 0xf100 numgen random mod 10 0 counter drop
	}
}
EOF
in_a ping -c 1 -W 5 "$IP_B" >/dev/null || { echo "FAIL: bridge setup" >&2; exit 1; }

# kstat NS IFACE MAP FIELD: a counter of `kcpx stats IFACE` in NS
kstat() {
	in_ns "$1" "$KCPX" stats "$2" | awk -v m="$3" -v f="$4" \
		'/^[a-z_]+$/ { cur = $1 } cur == m && $1 == f { print $2; found = 1 }
		 END { if (!found) print 0 }'
}
# nft_drops DIR: data shards the bridge dropped toward the server (dport) or the client
nft_drops() {
	in_ns "$NS_M" nft list chain bridge kfr drop10 |
		awk -v d="$1" '$0 ~ d " '$PORT'" { for (i = 1; i < NF; i++) if ($i == "packets")
			print $(i + 1) }'
}

nsenter --net=/run/netns/"$NS_B" python3 "$TCPIO" echo 9001 &
track_pid $!
# nsenter execs kcpx: $! is the daemon itself
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" server -l :$PORT -t 127.0.0.1:9001 \
	$COMMON --ds 10 --ps 3 --log "$work/server.log" &
SRV=$!
track_pid $SRV
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" up "$IF_A" client -l 127.0.0.1:8388 \
	-r "$IP_B:$PORT" $COMMON --ds 5 --ps 2 --log "$work/client.log" &
CLI=$!
track_pid $CLI
wait_tcp_port "$NS_B" 9001
wait_udp_port "$NS_B" $PORT
wait_tcp_port "$NS_A" 8388

out=$(in_a timeout 300 python3 "$TCPIO" multi 127.0.0.1 8388 $N $SIZE 2>&1) ||
	bad "echo through the tunnel: $out"
up=$(nft_drops dport) down=$(nft_drops sport)
echo "  $N x $SIZE bytes echoed; the bridge dropped $up data shards toward the server," \
	"$down toward the client"
[ "${up:-0}" -gt 300 ] && [ "${down:-0}" -gt 300 ] || bad "the bridge dropped too little"

# SNMP reaches the pinned map once a second: wait for the figures, 20 s at most
check() { # WHO NS IFACE LOST: XDP dropped parity, the daemon rebuilt >= LOST / 2
	local who=$1 ns=$2 ifc=$3 lost=$4 par rec i
	for i in $(seq 1 200); do
		par=$(kstat "$ns" "$ifc" kcpx_nat_stats drop_fec_parity)
		rec=$(kstat "$ns" "$ifc" kcpx_snmp FECRecovered)
		[ "$par" -gt 0 ] && [ $((rec * 2)) -ge "$lost" ] && break
		sleep 0.1
	done
	echo "  $who: XDP dropped $par unneeded parity shards, the daemon rebuilt $rec" \
		"data shards from parity ($lost lost on the way)"
	[ "$par" -gt 0 ] || bad "$who: XDP dropped no unneeded parity (groups not cut by the peer's ratio)"
	[ $((rec * 2)) -ge "$lost" ] || bad "$who: only $rec of $lost lost data shards rebuilt"
}
check server "$NS_B" "$IF_B" "${up:-0}"
check client "$NS_A" "$IF_A" "${down:-0}"

in_b "$KCPX" stats "$IF_B" >"$work/server-stats.txt"
in_a "$KCPX" stats "$IF_A" >"$work/client-stats.txt"
stop_up client $CLI "$NS_A" "$IF_A" "$work/client.log" || fail=1
stop_up server $SRV "$NS_B" "$IF_B" "$work/server.log" || fail=1
if [ $fail -ne 0 ]; then
	for f in "$work"/*.log "$work"/*.txt; do echo "== $f"; tail -80 "$f"; done
	exit 1
fi
echo "PASS"
