#!/usr/bin/env bash
# A spoofed flood against `kcpx up ... --proto kcpx` while a transfer runs: the native
# protocol's XDP checks must drop it before userspace sees it. Then the same flood against
# stock kcptun-server (UDP sockets), for comparison.
#
#   [ $NS_A ] kcpx up $IF_A client --------+
#                                          |   [ $NS_M ] bridge, capture on $IF_MA
#   [ $NS_C ] flooder (UDP socket) --------+-- bridge --- $IF_B [ $NS_B ] kcpx up server
#
# Each phase: two uploads of $SIZE bytes as baseline (the last datagrams captured on the
# bridge port of the client: replayed at once they are inside the replay window), then
# the flooder sends for $SECS seconds (random bytes, captured datagrams with a wrong tag,
# captured datagrams replayed; $PPS per second at most, 0 for as fast as one Python
# process goes) while two more uploads run.
#
# Asserted: sha256 equal for every upload; the server's XDP dropped, by reason, at least
# half of what the flooder sent (veth and bridge queues may lose the rest before XDP), and
# the server's daemon saw almost none of it (its InErrs). Reported: the goodput under the
# flood against the baseline, for kcpx (XDP) and for kcptun-server.
#
# FLOOD_RESULTS=FILE (tools/bench/bench.sh sets it) appends the figures there too: one
# `kind=flood name=kcpx|kcptun key=value ...` line per phase, one kind=flood_xdp line.
set -eu
NETNS_TAG=kxf$$
. "$(dirname "$0")/../lib/netns.sh"
work_dir xflood
here=$NETNS_TOP/tests/selftests
KCPTUN_SERVER=${KCPTUN_SERVER:-kcptun-server}
FLOOD="$here/xdp-flood.py"
SIZE=${SIZE:-$((96 << 20))}
SECS=${SECS:-10}
PPS=${PPS:-0}
PORT=4000
KEY=xdp-flood-selftest
TUN="--nocomp --mode fast3 --sndwnd 1024 --rcvwnd 1024 --ds 10 --ps 3"
[ -x "$KCPX" ] || { echo "missing $KCPX: run make first" >&2; exit 1; }

fail=0
bad() { echo "FAIL: $*"; fail=1; }
dump_logs() { for f in "$work"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -15 "$f"; }; done; }

# ---- three namespaces on a bridge in a fourth
NS_C=${NETNS_TAG}c NS_M=${NETNS_TAG}m
IF_C=${NETNS_TAG}vc IF_MA=${NETNS_TAG}ma IF_MB=${NETNS_TAG}mb IF_MC=${NETNS_TAG}mc
IP_C=10.$_netns_n.0.3
bpffs_mount
for ns in "$NS_A" "$NS_B" "$NS_C"; do netns_add "$ns"; done
netns_bridge "$NS_M" A:"$IF_A":"$IF_MA":"$IP_A" B:"$IF_B":"$IF_MB":"$IP_B" \
	C:"$IF_C":"$IF_MC":"$IP_C"
on_cleanup "in_a $KCPX down $IF_A; in_b $KCPX down $IF_B; rmdir /sys/fs/bpf/kcpx"
in_ns "$NS_C" ping -c 1 -W 5 "$IP_B" >/dev/null || { echo "FAIL: bridge setup" >&2; exit 1; }

# kstat MAP FIELD: a counter of `kcpx stats $IF_B`
kstat() {
	in_b "$KCPX" stats "$IF_B" | awk -v m="$1" -v f="$2" \
		'/^[a-z_]+$/ { cur = $1 } cur == m && $1 == f { print $2; found = 1 }
		 END { if (!found) print 0 }'
}

sink() { # PORT: a tcpio sink in NS_B, writing $work/sink/N.sha
	rm -rf "$work/sink"
	mkdir -p "$work/sink"
	nsenter --net=/run/netns/"$NS_B" python3 "$TCPIO" sink "$1" "$work/sink" &
	track_pid $!
	wait_tcp_port "$NS_B" "$1"
}

n=0
upload() { # upload NAME: $SIZE bytes through the tunnel, sha256 compared; sets $secs
	local sent got t0 t1
	t0=$(date +%s%N)
	sent=$(in_a timeout 120 python3 "$TCPIO" send 127.0.0.1 8388 "$SIZE" $((n + 5))) ||
		sent=send-failed
	for _ in $(seq 1 200); do [ -e "$work/sink/$n.sha" ] && break; sleep 0.05; done
	t1=$(date +%s%N)
	got=$(cut -d' ' -f1 "$work/sink/$n.sha" 2>/dev/null || echo none)
	[ "$sent" = "$got" ] || bad "$1: sha256 sent $sent, received $got"
	secs=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.2f", ns / 1e9 }')
	n=$((n + 1))
}

declare -A ratio
phase() { # NAME: baseline upload with capture, then an upload under the flood
	local name=$1 cap f base fl
	n=0
	in_ns "$NS_M" python3 "$FLOOD" capture "$IF_MA" $PORT 3000 "$work/$name.cap" 600 \
		>"$work/$name.captured" &
	cap=$!
	upload "$name baseline"
	base=$secs
	upload "$name baseline 2"
	base=$(awk -v a="$base" -v b="$secs" 'BEGIN { print a + b }')
	touch "$work/$name.cap.stop"
	wait $cap || true
	echo "  $name: baseline 2 x $SIZE bytes in ${base}s;" \
		"$(cat "$work/$name.captured") datagrams captured"
	in_ns "$NS_C" timeout $((SECS + 10)) python3 "$FLOOD" flood "$IP_B" $PORT \
		"$work/$name.cap" "$SECS" "$PPS" >"$work/$name.sent" &
	f=$!
	# the upload starts once the flooder's first datagrams are out (it marks that)
	wait_file "$work/$name.cap.started" $f || true
	upload "$name flood"
	fl=$secs
	upload "$name flood 2"
	secs=$(awk -v a="$fl" -v b="$secs" 'BEGIN { print a + b }')
	wait $f || true
	read -r total rnd badtag replay <"$work/$name.sent" || total=0
	echo "  $name: under the flood 2 x $SIZE bytes in ${secs}s; flooder sent $total" \
		"($rnd random, $badtag bad tag, $replay replayed) in ${SECS}s"
	[ "${total:-0}" -gt 1000 ] || bad "$name: the flood sent almost nothing (${total:-0})"
	ratio[$name]=$(awk -v b="$base" -v s="$secs" 'BEGIN { printf "%.0f", 100 * b / s }')
	awk -v s="$secs" -v f="$SECS" 'BEGIN { exit !(s > f - 0.5) }' &&
		echo "  $name: note: the uploads outlasted the flood"
	FLOODED=$total
	[ -n "${FLOOD_RESULTS:-}" ] && awk -v n="$name" -v b="$base" -v s="$secs" \
		-v z=$((2 * SIZE)) -v t="$total" -v r="$rnd" -v g="$badtag" -v p="$replay" \
		-v fs="$SECS" -v lim="$PPS" 'BEGIN { printf "kind=flood name=%s status=ok " \
		"ratio=%.3f base_s=%s flood_s=%s bytes=%d base_mbps=%.1f flood_mbps=%.1f " \
		"sent=%d random=%d badtag=%d replay=%d flood_secs=%s flood_pps=%.0f " \
		"pps_limit=%s\n", n, b / s, b, s, z, z * 8 / b / 1e6, z * 8 / s / 1e6,
		t, r, g, p, fs, t / fs, lim }' >>"$FLOOD_RESULTS"
	true
}

# ---- kcpx up, --proto kcpx, both ends
echo "== kcpx up --proto kcpx on both ends, XDP native checks"
sink 9001
# nsenter execs kcpx: $! is the daemon itself
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" server -l :$PORT -t 127.0.0.1:9001 \
	--key $KEY --proto kcpx $TUN --quiet --log "$work/server.log" \
	--snmplog "$work/snmp.csv" --snmpperiod 1 &
SRV=$!
track_pid $SRV
# One client engine (--threads 1), so one session: the replayed datagrams must belong to
# the session the flooded uploads move on, or they never fall behind its replay window.
# With an engine per queue, each upload's connection may land on either engine's session.
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" up "$IF_A" client --threads 1 -l 127.0.0.1:8388 \
	-r "$IP_B:$PORT" --key $KEY --proto kcpx $TUN --quiet --log "$work/client.log" &
CLI=$!
track_pid $CLI
wait_udp_port "$NS_B" $PORT 20
wait_tcp_port "$NS_A" 8388 20
grep -q "XDP checks the kcpx protocol" "$work/server.log" || bad "server: no XDP native checks"

# InErrs as published after this point (snmp_fresh: two more --snmplog rows)
snmp_fresh "$work/snmp.csv" || bad "the server wrote no SNMP rows"
e0=$(kstat kcpx_snmp InErrs)
declare -A before
reasons="drop_short drop_version drop_proto drop_session drop_tag drop_replay drop_old"
for r in $reasons pass drop_fec_dup drop_fec_parity; do
	before[$r]=$(kstat kcpx_nat_stats "$r")
done
phase kcpx
snmp_fresh "$work/snmp.csv" || bad "the server wrote no SNMP rows"
e1=$(kstat kcpx_snmp InErrs)
dropped=0
line=""
for r in $reasons; do
	v=$(($(kstat kcpx_nat_stats "$r") - ${before[$r]}))
	dropped=$((dropped + v))
	line+=" $r=$v"
done
passed=$(($(kstat kcpx_nat_stats pass) - before[pass]))
fecdrop=$(($(kstat kcpx_nat_stats drop_fec_parity) + $(kstat kcpx_nat_stats drop_fec_dup) -
	before[drop_fec_parity] - before[drop_fec_dup]))
echo "  kcpx: XDP dropped $dropped of $FLOODED flood datagrams:$line"
echo "  kcpx: XDP passed $passed good datagrams, dropped $fecdrop unneeded FEC shards;" \
	"server InErrs +$((e1 - e0))"
[ -n "${FLOOD_RESULTS:-}" ] && echo "kind=flood_xdp name=kcpx dropped=$dropped" \
	"flooded=$FLOODED passed=$passed fec_dropped=$fecdrop inerrs=$((e1 - e0))$line" \
	>>"$FLOOD_RESULTS"
[ $((dropped * 2)) -ge "$FLOODED" ] || bad "XDP drops ($dropped) do not account for the flood"
[ "$dropped" -le "$FLOODED" ] || bad "XDP dropped more ($dropped) than the flood ($FLOODED)"
for r in drop_version drop_tag; do # random bytes, bad tags
	v=$(($(kstat kcpx_nat_stats "$r") - ${before[$r]}))
	[ "$v" -gt 0 ] || bad "no $r drops"
done
for r in drop_replay drop_old; do
	v=$(($(kstat kcpx_nat_stats "$r") - ${before[$r]}))
	[ "$v" -gt 0 ] || bad "no $r drops"
done
[ $(((e1 - e0) * 100)) -le "$FLOODED" ] || bad "the daemon saw the flood: InErrs +$((e1 - e0))"
[ "$passed" -gt 1000 ] || bad "XDP passed only $passed good datagrams"
in_b "$KCPX" stats "$IF_B" | grep -q "kcpx_nat_stats" || bad "kcpx stats shows no kcpx_nat_stats"
# the client's XDP checked the server's datagrams (RESP under the handshake key, then DATA)
cpass=$(in_a "$KCPX" stats "$IF_A" | awk '/^kcpx_nat_stats$/ { m = 1; next } /^[a-z_]+$/ { m = 0 }
	m && ($1 == "pass" || $1 == "pass_hs") { printf "%s ", $2 }')
read -r cp chs <<<"$cpass"
echo "  client XDP: $cp data and ${chs:-0} handshake datagrams of the server passed the checks"
[ "${cp:-0}" -gt 100 ] && [ "${chs:-0}" -ge 1 ] || bad "client XDP checks: pass=$cp pass_hs=$chs"
kill -TERM $CLI $SRV
wait $CLI || bad "kcpx client did not exit cleanly"
wait $SRV || bad "kcpx server did not exit cleanly"
[ -e "/sys/fs/bpf/kcpx/$IF_B" ] && bad "pins left for $IF_B"

# ---- kcptun-server (UDP sockets) under the same flood, kcpx client in kcptun format
if command -v "$KCPTUN_SERVER" >/dev/null; then
	echo "== kcptun-server, UDP sockets, the same flood"
	sink 9002
	# shellcheck disable=SC2086
	in_b "$KCPTUN_SERVER" -l :$PORT -t 127.0.0.1:9002 --key $KEY --crypt aes $TUN \
		--quiet --log "$work/kcptun-server.log" &
	track_pid $!
	# shellcheck disable=SC2086
	in_a "$KCPX" client -l 127.0.0.1:8388 -r "$IP_B:$PORT" --key $KEY --crypt aes \
		--proto kcptun $TUN --quiet --log "$work/client-kt.log" &
	track_pid $!
	wait_udp_port "$NS_B" $PORT 20
	wait_tcp_port "$NS_A" 8388 20
	phase kcptun
else
	echo "  (no $KCPTUN_SERVER: kcptun figure skipped)"
	[ -n "${FLOOD_RESULTS:-}" ] && echo "kind=flood name=kcptun status=na" \
		"reason=no $KCPTUN_SERVER" >>"$FLOOD_RESULTS"
fi

echo "goodput under the flood, percent of the same path without it:"
for k in kcpx kcptun; do
	[ -n "${ratio[$k]:-}" ] && printf '  %-7s %4s %%\n' "$k" "${ratio[$k]}"
done
[ $fail -eq 0 ] || { dump_logs; exit 1; }
echo "PASS"
