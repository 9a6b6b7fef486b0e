#!/usr/bin/env bash
# `kcpx up` with two RX queues, one engine each, on a server bound to any address with
# two addresses: a datagram that reaches the engine without its session is handed to the
# engine that holds it, with the address it was sent to, and the answers keep leaving
# from that address (the clients' connected sockets drop any other). On a veth the RX
# queue is the sender's TX queue: R forwards everything to B on one TX queue of $IF_R2,
# chosen by XPS (forwarded datagrams have no socket to pin a queue), so a step moves the
# clients' datagrams from queue 0 to queue 1. AF_XDP bypasses netfilter in B: the NAT
# and the counters are in R.
#
#   [ A ] pace recv -> kcpx client 1 :8401 \                        [ B ] kcpx up $IF_B server
#         pace try  -> kcpx client 2 :8402  ==> $B3:4008 ==[ R ]==> :4008 (2 engines) -> pace
#         pace recv -> kcpx client 3 :8403 /   $A1 - $R1  nft  $R2 - $B2, $B3        source :9008
#                      (3: --proto kcptun)          XPS: queue 0 or 1  (route's source: $B2)
#   step       what happens                                   checks
#   rebind     mid-download, R rewrites client 1's port p    sha256 equal, stall <= 3 s,
#              to 40008 and sends on queue 1: engine 1        "peer moved", engine 1 handed
#              hands its DATA to engine 0                     datagrams over, engine 0 holds
#                                                             the session
#   handshake  client 2's INIT reaches engine 0, whose RESP  a connection carries data, the
#              R drops; then its port q becomes 40009 on      client never gives up, "peer
#              queue 1: the resent INITs are handed to        moved": the RESP to a handed
#              engine 0, which answers them                   INIT came from $B3
#   kcptun     mid-download, client 3's datagrams (kcptun's  sha256 equal, stall <= 3 s,
#              format, same address) go to queue 1: engine    engine 1 handed them, opened
#              1 hands them over by address                   nothing
#   all        every answer R forwarded to A                 none from $B2; one session
#                                                             opened per client, all on 0
# Every wait is for an event (a port, a counter, bytes received) and bounded. Needs nft.
set -eu
NETNS_TAG=kau$$
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/download.sh"
work_dir anyaddr-up
command -v nft >/dev/null || { echo "SKIP: nft is not installed"; exit 4; }
FLAGS="--key anyaddr-up-selftest --crypt aes --mode fast3 --quiet"
SIZE=$((4 << 20))
fail=0

# the default (--threads 0) gives min(RX queues, cores) engines: 2 here unless this process
# may run on one core only, where --threads 2 still gives 2
THREADS=""
[ "$(nproc)" -ge 2 ] || THREADS="--threads 2"

NS_R=${NETNS_TAG}r
IF_R1=${NETNS_TAG}r1
IF_R2=${NETNS_TAG}r2
n=$_netns_n
A1=10.$n.1.1 R1=10.$n.1.254 R2=10.$n.2.254 B2=10.$n.2.1 B3=10.$n.2.3
bpffs_mount
on_cleanup "in_b $KCPX down $IF_B >/dev/null 2>&1; rmdir /sys/fs/bpf/kcpx 2>/dev/null; true"
IP_A=$A1 IP_B=$B2 netns_routed "$NS_R" "$IF_R1" "$R1" "$IF_R2" "$R2" 2
ip -n "$NS_B" addr add "$B3/24" dev "$IF_B"
in_r() { in_ns "$NS_R" "$@"; }

# xps Q: R sends everything on $IF_R2's TX queue Q, which the veth delivers to $IF_B's RX
# queue Q
xps() { xps_queue "$NS_R" "$IF_R2" "$1"; }
# everything to queue 0 (engine 0) from the start: every session opens there
xps 0 || { echo "SKIP: XPS on $IF_R2 cannot be set"; exit 4; }

# what R forwards to A from the tunnel's port, by source address (the whole test)
on_cleanup "in_r nft delete table ip kaucount 2>/dev/null; true"
in_r nft -f - <<EOF
table ip kaucount {
	chain through {
		type filter hook forward priority 10;
		ip saddr $B3 udp sport 4008 counter
		ip saddr $B2 udp sport 4008 counter
	}
}
EOF
# answers from $B3, from $B2
from_b3() { in_r nft list table ip kaucount | grep -o 'packets [0-9]*' | sed -n '1s/packets //p'; }
from_b2() { in_r nft list table ip kaucount | grep -o 'packets [0-9]*' | sed -n '2s/packets //p'; }

in_b python3 "$PACE" source 9008 "$SIZE" $((1 << 20)) & track_pid $!
want=$(python3 "$PACE" sha "$SIZE")
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" server -l :4008 \
	-t 127.0.0.1:9008 $THREADS $FLAGS --log "$work/server.log" & spid=$!
track_pid $spid
for c in 1 2 3; do
	proto="--proto kcpx"
	[ "$c" = 3 ] && proto="--proto kcptun"
	# shellcheck disable=SC2086
	in_a "$KCPX" client -l 127.0.0.1:840$c -r "$B3:4008" --conn 1 $proto $FLAGS \
		--log "$work/client$c.log" &
	track_pid $!
done
wait_udp_port "$NS_B" 4008 20
wait_tcp_port "$NS_B" 9008 20
for c in 1 2 3; do wait_tcp_port "$NS_A" 840$c 20; done
wait_log "$work/server.log" "listening on .*\(af_xdp\)" 20 ||
	{ echo "FAIL: the server is not on AF_XDP"; fail=1; }
wait_log "$work/server.log" "2 threads" 20 || { echo "FAIL: the server did not start 2 engines"; fail=1; }

handed() { thread_handed "$spid" "$1"; }
# the UDP ports of A's sockets towards the server
ports() { udp_sports "$NS_A" 4008 "$A1"; }
# nft in R: client datagrams from port $1 leave R from port $2, the answers come back
on_cleanup "in_r nft delete table ip kau 2>/dev/null; in_r nft delete table ip kauhold 2>/dev/null; true"
rebind() {
	in_r nft -f - <<EOF
table ip kau {
	chain post {
		type filter hook postrouting priority -300;
		ip saddr $A1 udp sport $1 udp dport 4008 counter udp sport set $2
	}
	chain pre {
		type filter hook prerouting priority -300;
		ip daddr $A1 udp sport 4008 udp dport $2 counter udp dport set $1
	}
}
EOF
}
counted() { in_r nft list table ip kau | grep -o 'packets [0-9]*' | sed -n "$1s/packets //p"; }

echo "rebind: client 1's port moves and its datagrams reach engine 1 mid-download"
in_a timeout 60 python3 "$PACE" recv 127.0.0.1 8401 "$work/dl1" $((1 << 20)) & dl=$!
wait_file "$work/dl1.n" "$dl" || true
p=$(ports | head -1)
h0=$(handed 1)
wait_held "$work/dl1"
rebind "$p" 40008
xps 1
touch "$work/dl1.go"
wait "$dl" || true
check_dl "$work/dl1" "rebind" 3000
echo "  port $p -> 40008: sent $(counted 1), answers back $(counted 2)"
grep -q "peer moved from $A1:$p to $A1:40008" "$work/server.log" ||
	{ echo "FAIL: the server logged no move to $A1:40008"; fail=1; }
echo "  engine 1 handed $(($(handed 1) - h0)) datagrams to engine 0, which holds the session"
[ "$(handed 1)" -gt "$h0" ] 2>/dev/null || { echo "FAIL: engine 1 handed nothing over"; fail=1; }
[ "$(thread_sessions "$spid" 0)" = 1 ] && [ "$(thread_sessions "$spid" 1)" = 0 ] ||
	{ echo "FAIL: engines hold $(thread_sessions "$spid" 0) and $(thread_sessions "$spid" 1) sessions, want 1 and 0"; fail=1; }
xps 0
in_r nft delete table ip kau

echo "handshake: client 2's INIT is resent from another port, on the other queue"
# every answer to a port other than client 1's is dropped until the resends are handed
in_r nft -f - <<EOF
table ip kauhold {
	chain through {
		type filter hook forward priority 0;
		ip daddr $A1 udp sport 4008 udp dport != $p counter drop
	}
}
EOF
h0=$(handed 1) # no status call from here until the answers go through
in_a python3 "$PACE" try 127.0.0.1 8402 30 >"$work/try" & try=$!
q=
for _ in $(seq 1 200); do
	q=$(ports | grep -vx "$p" | head -1 || true)
	[ -n "$q" ] && break
	sleep 0.05
done
[ -n "$q" ] || { echo "FAIL: client 2 has no socket towards the server"; fail=1; q=1; }
t_q=${EPOCHREALTIME/./}
# the INIT from port q got to engine 0 (held answers counted) before the port moves
for _ in $(seq 1 100); do
	[ "$(in_r nft list table ip kauhold | grep -o 'packets [0-9]*' | sed 's/packets //')" -ge 1 ] &&
		break
	sleep 0.05
done
t_init=$(((${EPOCHREALTIME/./} - t_q) / 1000))
rebind "$q" 40009
xps 1
# three resends from the new port (100 ms apart) before the answers go through: the RESP
# the client gets answers a handed INIT (the client gives its handshake up 5 s after its
# INIT: the wait is short, on a counter, no status call)
for _ in $(seq 1 100); do
	[ "$(counted 1)" -ge 3 ] && break
	sleep 0.05
done
in_r nft delete table ip kauhold
t_held=$(((${EPOCHREALTIME/./} - t_q) / 1000))
if wait "$try"; then
	echo "  a connection through client 2 carried data after $(cat "$work/try") ms (its" \
		"socket appeared, answers held: first at $t_init ms, $(counted 1) INITs resent" \
		"from 40009 by $t_held ms); engine 1 handed $(($(handed 1) - h0)) datagrams to engine 0"
else
	echo "FAIL: client 2 got no data"
	fail=1
fi
! grep -q "no kcpx handshake answer" "$work/client2.log" ||
	{ echo "FAIL: client 2 gave up its handshake: the RESP came from another address"; fail=1; }
grep -q "peer moved from $A1:$q to $A1:40009" "$work/server.log" ||
	{ echo "FAIL: the server logged no move to $A1:40009"; fail=1; }
[ "$(handed 1)" -gt "$h0" ] || { echo "FAIL: engine 1 handed nothing over"; fail=1; }
xps 0
in_r nft delete table ip kau

echo "kcptun: client 3's datagrams (kcptun's format) reach engine 1 mid-download"
h0=$(handed 1)
in_a timeout 60 python3 "$PACE" recv 127.0.0.1 8403 "$work/dl3" $((1 << 20)) & dl=$!
wait_held "$work/dl3"
xps 1
touch "$work/dl3.go"
wait "$dl" || true
check_dl "$work/dl3" "kcptun" 3000
echo "  engine 1 handed $(($(handed 1) - h0)) datagrams to engine 0"
[ "$(handed 1)" -gt "$h0" ] || { echo "FAIL: engine 1 handed nothing over"; fail=1; }
xps 0

echo "all: where the answers came from, the sessions opened"
opened=$(grep -c "session .* opened" "$work/server.log" || true)
echo "  answers to A from $B3: $(from_b3), from $B2: $(from_b2); $opened sessions opened;" \
	"engines hold $(thread_sessions "$spid" 0) and $(thread_sessions "$spid" 1)"
[ "$(from_b3)" -gt 0 ] || { echo "FAIL: no answer came from $B3"; fail=1; }
[ "$(from_b2)" = 0 ] || { echo "FAIL: $(from_b2) answers came from $B2, not the address written to"; fail=1; }
[ "$opened" = 3 ] || { echo "FAIL: the server opened $opened sessions for 3 clients, want 3"; fail=1; }
[ "$(thread_sessions "$spid" 0)" = 3 ] && [ "$(thread_sessions "$spid" 1)" = 0 ] ||
	{ echo "FAIL: engines hold $(thread_sessions "$spid" 0) and $(thread_sessions "$spid" 1) sessions, want 3 and 0"; fail=1; }

kill -0 "$spid" 2>/dev/null || { echo "FAIL: the server died"; fail=1; }
grep -h "moved\|opened\|closed\|failed decryption" "$work"/*.log | sed 's/^/  | /'
[ "$fail" -eq 0 ] || tail_logs
exit $fail
