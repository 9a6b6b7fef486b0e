#!/usr/bin/env bash
# --threads 2 on a server bound to any address, with two addresses: a datagram that
# reaches the thread without its session is handed to the thread that holds it, with the
# address it was sent to, and the answers keep leaving from that address (the client's
# connected socket drops any other). The server's threads are steered by source port
# parity (io/udp.c): nft in A rewrites the client's source port to one of the other
# parity, as a NAT rebinding would.
#
#   [ A ] pace recv -> kcpx client 127.0.0.1:8397 ==udp==> $IP_B3:4006  kcpx server :4006 [ B ]
#         pace try  -> kcpx client 127.0.0.1:8398 ==udp==> $IP_B3:4006  --threads 2
#                      nft: source port p -> other parity               -> pace source :9006
#                                                                        (route's source $IP_B)
#   step       what happens                                    checks
#   rebind     mid-download, client 1's port p becomes one    sha256 equal, stall <= 3 s,
#              of the other parity: its DATA reaches the      "peer moved", the other thread
#              other thread, handed to the session's          handed datagrams over, nothing
#                                                             came from $IP_B
#   handshake  client 2's INIT reaches thread q % 2, whose    a connection carries data, the
#              RESP A drops; then its port q becomes one of   client never gives up its
#              the other parity, and the resent INITs are     handshake, "peer moved": the
#              handed over: the RESP to them leaves from the  RESP to a handed INIT came
#              address they were sent to                      from $IP_B3
# Every wait is for an event (a port, a counter, bytes received) and bounded. Needs nft.
set -eu
NETNS_TAG=kta$$
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/download.sh"
work_dir threads-anyaddr
command -v nft >/dev/null || { echo "SKIP: nft is not installed"; exit 4; }
FLAGS="--key threads-anyaddr-selftest --crypt aes --mode fast3 --proto kcpx --quiet"
SIZE=$((4 << 20))
fail=0

netns_pair
IP_B3=${IP_B%.*}.3
ip -n "$NS_B" addr add "$IP_B3/24" dev "$IF_B"
in_b python3 "$PACE" source 9006 "$SIZE" $((1 << 20)) & track_pid $!
want=$(python3 "$PACE" sha "$SIZE")
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l :4006 -t 127.0.0.1:9006 --threads 2 $FLAGS \
	--log "$work/server.log" & spid=$!
track_pid $spid
for c in 1 2; do
	# shellcheck disable=SC2086
	in_a "$KCPX" client -l 127.0.0.1:839$((6 + c)) -r "$IP_B3:4006" --conn 1 $FLAGS \
		--log "$work/client$c.log" &
	track_pid $!
done
wait_udp_port "$NS_B" 4006 20
wait_tcp_port "$NS_B" 9006 20
wait_tcp_port "$NS_A" 8397 20
wait_tcp_port "$NS_A" 8398 20
on_cleanup "in_a nft delete table ip kta 2>/dev/null; in_a nft delete table ip ktahold 2>/dev/null; true"

handed() { thread_handed "$spid" "$1"; }
# the UDP ports of A's sockets towards the server
ports() { udp_sports "$NS_A" 4006 "$IP_A"; }
# nft in A: datagrams from port $1 leave from port $2 and the answers come back
rebind() {
	in_a nft -f - <<EOF
table ip kta {
	chain out {
		type filter hook output priority -300;
		ip daddr $IP_B3 udp dport 4006 udp sport $1 counter udp sport set $2
	}
	chain in {
		type filter hook prerouting priority -250;
		ip saddr $IP_B3 udp sport 4006 udp dport $2 counter udp dport set $1
		ip saddr $IP_B udp sport 4006 counter
	}
}
EOF
}
# packets counted by rule $1 (1-based) of table kta
counted() { in_a nft list table ip kta | grep -o 'packets [0-9]*' | sed -n "$1s/packets //p"; }

echo "rebind: client 1's datagrams reach the other thread mid-download"
h0=$(($(handed 0) + $(handed 1))) # before any session: nothing is handed but the rebind's
in_a timeout 60 python3 "$PACE" recv 127.0.0.1 8397 "$work/dl1" $((1 << 20)) & dl=$!
# asked once data flows, before the hold: the rebind then follows the hold at once, while
# the source still has most of its bytes to send
wait_file "$work/dl1.n" "$dl" || true
p=$(ports | head -1)
k=$((p % 2)) o=$((1 - p % 2)) new=$((40000 + (1 - p % 2)))
wait_held "$work/dl1"
rebind "$p" "$new"
touch "$work/dl1.go"
wait "$dl" || true
check_dl "$work/dl1" "rebind" 3000
echo "  port $p -> $new: sent $(counted 1), answers from $IP_B3 $(counted 2), from $IP_B $(counted 3)"
grep -q "peer moved from $IP_A:$p to $IP_A:$new" "$work/server.log" ||
	{ echo "FAIL: the server logged no move to $IP_A:$new"; fail=1; }
ho=$(($(handed "$o") - h0))
echo "  thread $o handed $ho datagrams to thread $k, which holds the session"
[ "$ho" -gt 0 ] || { echo "FAIL: thread $o handed nothing over"; fail=1; }
[ "$(counted 2)" -gt 0 ] || { echo "FAIL: no answer from $IP_B3 reached the new port"; fail=1; }
[ "$(counted 3)" = 0 ] || { echo "FAIL: $(counted 3) answers came from $IP_B"; fail=1; }
[ "$(thread_sessions "$spid" "$k")" = 1 ] && [ "$(thread_sessions "$spid" "$o")" = 0 ] ||
	{ echo "FAIL: threads hold $(thread_sessions "$spid" 0) and $(thread_sessions "$spid" 1) sessions, want 1 on $k" \
		"(port $p: steered by its parity)"; fail=1; }
in_a nft delete table ip kta

echo "handshake: client 2's INIT is resent from a port of the other parity"
# every answer to a port other than client 1's is dropped until the resends are handed
in_a nft -f - <<EOF
table ip ktahold {
	chain in {
		type filter hook prerouting priority -300;
		ip saddr $IP_B3 udp sport 4006 udp dport != $p counter drop
	}
}
EOF
in_a python3 "$PACE" try 127.0.0.1 8398 30 >"$work/try" & try=$!
q=
for _ in $(seq 1 200); do
	q=$(ports | grep -vx "$p" | head -1 || true)
	[ -n "$q" ] && break
	sleep 0.05
done
[ -n "$q" ] || { echo "FAIL: client 2 has no socket towards the server"; fail=1; q=1; }
t_q=${EPOCHREALTIME/./}
k=$((q % 2)) o=$((1 - q % 2)) new=$((40002 + (1 - q % 2)))
h0=$(handed "$o")
rebind "$q" "$new"
# three resends from the new port (100 ms apart) before the answers go through: the RESP
# the client gets answers a handed INIT, not one from port q (the client gives its
# handshake up 5 s after the INIT: the wait is short, on a counter, no status call)
for _ in $(seq 1 100); do
	[ "$(counted 1)" -ge 3 ] && break
	sleep 0.05
done
in_a nft delete table ip ktahold
t_held=$(((${EPOCHREALTIME/./} - t_q) / 1000))
if wait "$try"; then
	echo "  a connection through client 2 carried data after $(cat "$work/try") ms" \
		"(answers held until $t_held ms after its socket appeared); thread $o handed" \
		"$(($(handed "$o") - h0)) datagrams to thread $k"
else
	echo "FAIL: client 2 got no data"
	fail=1
fi
! grep -q "no kcpx handshake answer" "$work/client2.log" ||
	{ echo "FAIL: client 2 gave up its handshake: the RESP came from another address"; fail=1; }
grep -q "peer moved from $IP_A:$q to $IP_A:$new" "$work/server.log" ||
	{ echo "FAIL: the server logged no move to $IP_A:$new"; fail=1; }
[ "$(handed "$o")" -gt "$h0" ] || { echo "FAIL: thread $o handed nothing over"; fail=1; }
echo "  answers to port $new: from $IP_B3 $(counted 2), from $IP_B $(counted 3)"
[ "$(counted 3)" = 0 ] || { echo "FAIL: $(counted 3) answers came from $IP_B"; fail=1; }

grep -h "moved\|opened\|closed" "$work"/*.log | sed 's/^/  | /'
[ "$fail" -eq 0 ] || tail_logs
exit $fail
