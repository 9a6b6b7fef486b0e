#!/usr/bin/env bash
# Forged kcptun-format datagrams against a server (--crypt none: anyone can make them;
# with any other cipher a captured datagram replays the same): admission caps, memory,
# log lines, goodput of a real transfer, and what a spoofed victim receives.
#
#   [ $NS_A ] kcpx client :8388 ============ udp ============ kcpx server :4000 [ $NS_B ]
#             forger: raw IPv4, source $IP_V:*                  -> tcpio source :9001
#             victim $IP_V (second address of $IF_A): nft counts what comes to it
#
# 1. one forged datagram carrying a smux SYN from $IP_V:7777: the server may send the
#    victim at most 3 datagrams (the issue's target), counted until the server closes
#    that session ("its peer never answered").
# 2. a download alone, the same download while 20,000 forged datagrams (a new random conv
#    each, a smux NOP; built before the download starts) come from 20,000 ports of $IP_V,
#    and a download alone again (the baseline is the mean of the two). Reported and
#    asserted: server RSS growth (<= 16 MB), server log lines during it (<= 100), the
#    goodput ratio (reported; asserted >= 0.3 only, that the transfer was not starved:
#    the forger runs on the same cores, and on a busy machine the figure is noisy;
#    docs/SECURITY.md gives measured runs against the 0.8 target), datagrams to the
#    victim, sessions refused. The forger sends about 5,000 datagrams a second.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir forged
command -v nft >/dev/null || { echo "SKIP: no nft" >&2; exit 4; }
fail=0
bad() { echo "FAIL: $*"; fail=1; }
SIZE=${SIZE:-$((24 << 20))}
TUN="--key forged --crypt none --ds 0 --ps 0 --mode fast3 --nocomp --proto kcptun"
IP_V=10.$_netns_n.0.9

netns_pair
ip -n "$NS_A" addr add "$IP_V/24" dev "$IF_A"
echo "table inet kxv { chain in { type filter hook input priority 0; ip daddr $IP_V udp sport 4000 counter; }; }" |
	in_a nft -f -
victim() { in_a nft list ruleset | sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -1; }

in_b python3 "$TCPIO" source 9001 "$SIZE" 7 &
track_pid $!
# nsenter directly (no shell function): $! is the daemon's pid
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l :4000 -t 127.0.0.1:9001 $TUN \
	--log "$work/server.log" &
SRV=$!
track_pid $SRV
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8388 -r "$IP_B:4000" $TUN \
	--log "$work/client.log" &
track_pid $!
wait_udp_port "$NS_B" 4000
wait_tcp_port "$NS_B" 9001
wait_tcp_port "$NS_A" 8388

FORGE='
import os, socket, struct, sys, time, zlib
src, dst, n, port0, cmd = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ready = sys.argv[6] if len(sys.argv) > 6 else None
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
smux = bytes([1, 0 if cmd == "syn" else 3]) + struct.pack("<HI", 0, 3)
pkts = []
for i in range(n):
    conv = struct.unpack("<I", os.urandom(4))[0] | 1
    kcp = struct.pack("<IBBHIIII", conv, 81, 0, 128, 0, 0, 0, len(smux)) + smux
    body = os.urandom(16) + struct.pack("<I", zlib.crc32(kcp)) + kcp
    udp = struct.pack("!HHHH", port0 + i, 4000, 8 + len(body), 0) + body
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    pkts.append(ip + udp)
# built before the clock starts: what the flood costs the forger is then only sending
if ready:
    open(ready, "w").close()
for i, p in enumerate(pkts):
    s.sendto(p, (dst, 0))
    if i % 100 == 99:
        time.sleep(0.02)  # about 5,000 a second: the forger must not starve the tunnel of CPU
'

echo "== one forged datagram (a smux SYN) from a spoofed source"
v0=$(victim)
in_a python3 -c "$FORGE" "$IP_V" "$IP_B" 1 7777 syn
for _ in $(seq 300); do grep -q "$IP_V:7777 closed" "$work/server.log" && break; sleep 0.1; done
grep -q "$IP_V:7777 opened" "$work/server.log" || bad "the forged datagram opened no session"
grep -q "$IP_V:7777 closed" "$work/server.log" || bad "the forged session was not closed"
one=$(($(victim) - v0))
echo "  the victim received $one datagrams (target <= 3)"
[ "$one" -le 3 ] || bad "one forged datagram made the server send $one datagrams"

want=$(python3 "$TCPIO" data "$SIZE" 7)
download() { # download TAG: prints nanoseconds taken; checks the sha
	local t0 t1
	t0=$(date +%s%N)
	in_a timeout 120 python3 "$TCPIO" recv 127.0.0.1 8388 >"$work/$1" 2>&1 || true
	t1=$(date +%s%N)
	[ "$(cut -d' ' -f1 "$work/$1")" = "$want" ] || echo "FAIL: $1: wrong data: $(cat "$work/$1")" >&2
	echo $((t1 - t0))
}
rss() { awk '/^VmRSS/ { print $2 }' /proc/"$SRV"/status; }

echo "== a download alone, with 20,000 forged datagrams from 20,000 ports, alone again"
base1=$(download base)
r0=$(rss)
l0=$(wc -l <"$work/server.log")
v0=$(victim)
in_a python3 -c "$FORGE" "$IP_V" "$IP_B" 20000 20000 nop "$work/forger.ready" &
fpid=$!
track_pid $fpid
for _ in $(seq 600); do [ -e "$work/forger.ready" ] && break; sleep 0.05; done
[ -e "$work/forger.ready" ] || bad "the forger never got ready"
flood=$(download flood)
wait $fpid || bad "the forger failed"
# the baseline is the mean of a download before and one after: the machine's load drifts
base2=$(download base)
base=$(((base1 + base2) / 2))
r1=$(rss)
l1=$(wc -l <"$work/server.log")
"$KCPX" status $SRV >"$work/status" 2>&1 || true
growth=$(((r1 - r0) / 1024))
lines=$((l1 - l0))
ratio=$(awk -v b="$base" -v f="$flood" 'BEGIN { printf "%.2f", b / f }')
echo "  server RSS $((r0 / 1024)) -> $((r1 / 1024)) MB (growth $growth MB, target <= 16)"
echo "  server log lines during the flood: $lines (target <= 100)"
echo "  goodput: $((SIZE * 8 / (base1 / 1000))) and $((SIZE * 8 / (base2 / 1000))) Mbit/s alone, $((SIZE * 8 / (flood / 1000))) Mbit/s under the flood (the forger shares the 2 cores): ratio $ratio (target >= 0.8)"
echo "  datagrams to the victim: $(($(victim) - v0))"
grep "admission:" "$work/status" | sed 's/^ */  /' || bad "no admission line in kcpx status"
grep -q "wrong data" "$work/base" "$work/flood" 2>/dev/null && bad "a download was corrupted"
for t in base flood; do
	[ "$(cut -d' ' -f1 "$work/$t")" = "$want" ] || bad "$t: wrong data: $(cat "$work/$t")"
done
[ "$growth" -le 16 ] || bad "RSS grew $growth MB"
[ "$lines" -le 100 ] || bad "$lines log lines"
awk -v r="$ratio" 'BEGIN { exit !(r >= 0.3) }' || bad "goodput ratio $ratio"
kill -0 $SRV || bad "the server died"

[ $fail -eq 0 ] || tail -30 "$work/server.log"
[ $fail -eq 0 ] && echo PASS || exit 1
