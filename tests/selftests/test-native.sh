#!/usr/bin/env bash
# kcpx's native protocol end to end over plain UDP sockets (docs/PROTOCOL.md).
#
#   [ A ] tcpio -> kcpx client :838N ==udp== kcpx server :400N [ B ] -> tcpio
#         $IP_A                    (veth)                $IP_B
#
#   pair  client         server          service   checks
#   1     --proto kcpx   (default auto)  sink      64 MiB upload, sha256; native in the log
#   2     --proto kcpx   --proto kcpx    source    64 MiB download with FEC 10/3, sha256
#   3     --proto auto   --proto auto    echo      32 streams; auto picked native
#   4     --proto auto   --proto kcptun  echo      no kcpx server: falls back to kcptun
#   5     --proto kcptun --proto kcpx    echo      a native-only server refuses kcptun
set -eu
NETNS_TAG=kn$$
. "$(dirname "$0")/../lib/netns.sh"
work_dir native
SIZE=${SIZE:-$((64 << 20))}
BASE="--key native-selftest --crypt aes --nocomp --mode fast3 --sndwnd 1024 --rcvwnd 1024 --quiet"

netns_pair
in_b python3 "$TCPIO" sink 9001 "$work" & track_pid $!
in_b python3 "$TCPIO" source 9002 "$SIZE" 7 & track_pid $!
in_b python3 "$TCPIO" echo 9003 & track_pid $!

pair() { # pair N SERVICE_PORT CLIENT_FLAGS SERVER_FLAGS
	local n=$1 svc=$2 cf=$3 sf=$4
	# shellcheck disable=SC2086
	in_b "$KCPX" server -l ":400$n" -t "127.0.0.1:$svc" $BASE $sf \
		--log "$work/server$n.log" & track_pid $!
	# shellcheck disable=SC2086
	in_a "$KCPX" client -l "127.0.0.1:838$n" -r "$IP_B:400$n" $BASE $cf \
		--log "$work/client$n.log" & track_pid $!
}
pair 1 9001 "--proto kcpx --ds 0 --ps 0" "--ds 0 --ps 0"
pair 2 9002 "--proto kcpx --ds 10 --ps 3" "--proto kcpx --ds 10 --ps 3"
pair 3 9003 "--proto auto" "--proto auto"
pair 4 9003 "--proto auto" "--proto kcptun"
pair 5 9003 "--proto kcptun" "--proto kcpx"
for i in 1 2 3 4 5; do
	wait_udp_port "$NS_B" "400$i" 20
	wait_tcp_port "$NS_A" "838$i" 20
done

fail=0
rate() { echo "scale=1; $1 / 1048576 / ($3 - $2)" | bc 2>/dev/null || echo "?"; }

echo "upload: $SIZE bytes A -> B, native, no FEC"
t0=$(date +%s.%N)
sent=$(in_a timeout 300 python3 "$TCPIO" send 127.0.0.1 8381 "$SIZE" 7)
for _ in $(seq 1 100); do [ -e "$work/0.sha" ] && break; sleep 0.1; done
got=$(cut -d' ' -f1 "$work/0.sha" 2>/dev/null || echo none)
t1=$(date +%s.%N)
echo "  sent $sent"
echo "  got  $got ($(cut -d' ' -f2 "$work/0.sha" 2>/dev/null) bytes), $(rate "$SIZE" "$t0" "$t1") MiB/s"
[ "$sent" = "$got" ] || { echo "FAIL: upload sha256 differs"; fail=1; }

echo "download: $SIZE bytes B -> A, native, FEC 10/3"
want=$(python3 "$TCPIO" data "$SIZE" 7)
t0=$(date +%s.%N)
read -r got gotn < <(in_a timeout 300 python3 "$TCPIO" recv 127.0.0.1 8382)
t1=$(date +%s.%N)
echo "  want $want"
echo "  got  $got ($gotn bytes), $(rate "$SIZE" "$t0" "$t1") MiB/s"
[ "$want" = "$got" ] || { echo "FAIL: download sha256 differs"; fail=1; }

echo "auto <-> auto: 32 concurrent echo streams"
in_a timeout 120 python3 "$TCPIO" multi 127.0.0.1 8383 32 $((1 << 20)) ||
	{ echo "FAIL: concurrent streams (auto)"; fail=1; }

echo "auto client -> kcptun-only server: fallback, 8 echo streams"
in_a timeout 120 python3 "$TCPIO" multi 127.0.0.1 8384 8 $((1 << 18)) ||
	{ echo "FAIL: echo after fallback"; fail=1; }

echo "kcptun client -> kcpx-only server: refused"
if in_a timeout 8 python3 "$TCPIO" multi 127.0.0.1 8385 1 1024 >/dev/null 2>&1; then
	echo "FAIL: a --proto kcpx server carried kcptun-format traffic"
	fail=1
fi

# What each end says it spoke (the client logs the handshake's outcome).
for i in 1 2 3; do
	grep -q "kcpx protocol" "$work/client$i.log" ||
		{ echo "FAIL: pair $i did not speak the kcpx protocol"; fail=1; }
done
grep -q "falling back to the kcptun protocol" "$work/client4.log" ||
	{ echo "FAIL: pair 4 did not fall back"; fail=1; }
grep -q "kcpx protocol" "$work/client4.log" &&
	{ echo "FAIL: pair 4 claims a kcpx handshake with a kcptun-only server"; fail=1; }
grep -h "kcpx protocol\|falling back" "$work"/client*.log | sed 's/^/  /'

alive=$(pgrep -fc "$KCPX (client|server) -l .*$work" || true)
[ "$alive" -ge 10 ] || { echo "FAIL: a kcpx daemon died ($alive of 10 left)"; fail=1; }
[ "$fail" -eq 0 ] || tail_logs
exit $fail
