#!/usr/bin/env bash
# Sessions that survive the network with `kcpx up` (XDP + AF_XDP) at BOTH ends and the
# strict native protocol (--proto kcpx). AF_XDP bypasses netfilter on the hosts, so the
# NAT is a router namespace between them:
#
#   [ A ] pace recv -> kcpx up $IF_A client    [ R ] nft (stateless     [ B ] kcpx up $IF_B
#         127.0.0.1:8392   $A1 ===== veth ===== $R1     rewrite)  $R2 ===== veth ===== $B2
#                                                                           server :4002 -> pace
#                                                                           source :9002
#   step          what happens                                  checks
#   first INIT    a first connection; R drops the server's       the server opens one session
#                 answers until the client resent its INIT       (one engine claims the sid)
#   rebind        mid-download, R rewrites the client's source   sha256 equal, no stream reset,
#                 address and port to $R2:40998 (and back), and  longest stall <= 3 s,
#                 sends them on the TX queue of $IF_R2 (XPS)     server logs "peer moved",
#                 whose RX queue on $IF_B is the other server    the other engine handed them
#                 engine's (the server runs one per RX queue,    over, each engine holds the
#                 the default)                                   sessions it held
#   restart       the server is killed (SIGKILL, its XDP left    a new connection carries data
#                 attached) and `kcpx up` started again: XDP     within 8 s of the new server
#                 passes DATA for the lost session under its     listening; client logs the
#                 RESET budget, the daemon answers with a RESET  RESET, pass_reset > 0
#   client        the client is killed and started again; R      its first connection works at
#   restart       rewrites its datagrams to leave from the old   once; the server opens a new
#                 port                                           session for that address
#   dns           --remoteaddr is a name (a private /etc/hosts   the client logs the new
#                 in the client's mount namespace); it moves to  address, XDP steers the new
#                 $B3, the server restarts: the client's new     session's port from $B3 and a
#                 session looks the name up again                connection carries data
# The client runs one engine (--threads 1): the restart steps count on every connection
# using its one session. The server runs the default, one engine per RX queue (2 here).
# The time bounds (3 s stall, 8 s to a working connection) leave a busy machine room;
# what they catch is recovery that waits for a timer (--keepalive 10: 30 s timeout).
# Every wait is for an event (a log line, a port, bytes received) and bounded. Needs nft.
set -eu
NETNS_TAG=ksu$$
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/download.sh"
work_dir survive-up
command -v nft >/dev/null || { echo "SKIP: nft is not installed"; exit 4; }
PACE=$NETNS_TOP/tests/lib/pace.py
FLAGS="--key survive-up-selftest --crypt aes --mode fast3 --keepalive 10 --proto kcpx --quiet"
RATE=$((1 << 20)) # the rebind comes while the source still has most of its bytes to send
SIZE=$((6 << 20))

NS_R=${NETNS_TAG}r
IF_R1=${NETNS_TAG}r1
IF_R2=${NETNS_TAG}r2
n=$_netns_n
A1=10.$n.1.1 R1=10.$n.1.254 R2=10.$n.2.254 B2=10.$n.2.1 B3=10.$n.2.3
NAME=kcpx-survive-$$.test
bpffs_mount
on_cleanup "in_a $KCPX down $IF_A >/dev/null 2>&1; in_b $KCPX down $IF_B >/dev/null 2>&1; rmdir /sys/fs/bpf/kcpx 2>/dev/null; true"
IP_A=$A1 IP_B=$B2 netns_routed "$NS_R" "$IF_R1" "$R1" "$IF_R2" "$R2" 2
ip -n "$NS_B" addr add "$B3/24" dev "$IF_B"
in_r() { in_ns "$NS_R" "$@"; }

in_b python3 "$PACE" source 9002 "$SIZE" "$RATE" & track_pid $!
want=$(python3 "$PACE" sha "$SIZE")
fail=0

server() {
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" server -l :4002 -t 127.0.0.1:9002 \
		$FLAGS --log "$work/server.log" &
	spid=$!
	track_pid "$spid"
}
# kill -9 the server and start it again; return once every engine is up (the XDP checks
# get their keys at start: DATA before that passes unchecked, and the RESET it gets does
# not count as pass_reset)
restart_server() {
	local started
	started=$(grep -c "threads, each with its own socket" "$work/server.log" || true)
	kill -KILL "$spid"
	wait "$spid" 2>/dev/null || true
	server
	wait_udp_port "$NS_B" 4002 20
	for _ in $(seq 1 200); do
		[ "$(grep -c "threads, each with its own socket" "$work/server.log")" -gt "$started" ] &&
			break
		sleep 0.1
	done
}
# the client's /etc/hosts, bind-mounted in its own mount namespace: $NAME is $B2 first
echo "$B2 $NAME" >"$work/hosts"
client() {
	# unshare and nsenter exec: $! is kcpx itself
	# shellcheck disable=SC2086
	unshare -m --propagation private sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' \
		"$work/hosts" nsenter --net=/run/netns/"$NS_A" "$KCPX" up "$IF_A" client \
		-l 127.0.0.1:8392 -r "$NAME:4002" --conn 1 --threads 1 $FLAGS --log "$work/client.log" &
	cpid=$!
	track_pid "$cpid"
}
# the client's UDP port towards the server (the socket beside its AF_XDP port)
cport() { udp_sport "$NS_A" 4002 "$A1"; }
nat_stat() { # nat_stat FIELD: the server's kcpx_nat_stats FIELD (`kcpx stats`)
	in_b "$KCPX" stats "$IF_B" | awk -v f="$1" \
		'/^[a-z_]+$/ { cur = $1 } cur == "kcpx_nat_stats" && $1 == f { print $2; found = 1 }
		 END { if (!found) print 0 }'
}
on_cleanup "in_r nft delete table ip ksu 2>/dev/null; true"

server
client
wait_udp_port "$NS_B" 4002 20
wait_tcp_port "$NS_A" 8392 20
wait_tcp_port "$NS_B" 9002 20
wait_log "$work/server.log" "listening on .*\(af_xdp\)" 20 ||
	{ echo "FAIL: the server is not on AF_XDP"; fail=1; }
wait_log "$work/client.log" "af_xdp: $IF_A" 20 ||
	{ echo "FAIL: the client is not on AF_XDP"; fail=1; }

srv_status() { kcpx_status "$spid"; }
thread_sessions() { srv_status | sed -n "s/^  thread $1: \([0-9]*\) sessions.*/\1/p"; }
handed() { srv_status | sed -n "s/^  thread $1: .*handed to another thread \([0-9]*\),.*/\1/p"; }
# xps Q: R sends everything on $IF_R2's TX queue Q, which a veth delivers to $IF_B's RX
# queue Q; "xps": back to the flow hash
xps() { xps_queue "$NS_R" "$IF_R2" "$@"; }

echo "rebind: R gives the client's datagrams a new source address and port mid-download"
grep -q "$IF_B: 2 engines: one per RX queue" "$work/server.log" ||
	{ echo "FAIL: the server does not run 2 engines by default"; fail=1; }
# The session opens with a first connection (pace try). R holds the server's answers
# back until the client has sent its INIT 4 times (100 ms apart). Before session 11 the
# client's first datagram left through its kernel socket (no neighbour entry yet) and
# the resends through its AF_XDP queue, so the copies reached both server engines (both
# opened the session, with different keys, and the download stalled); the client now
# resolves its next hop first and sends them all one way, and test-xdp-anyaddr-up.sh
# moves the resends to the other engine on purpose. One session either way.
on_cleanup "in_r nft delete table ip ksuinit 2>/dev/null; true"
in_r nft -f - <<EOF
table ip ksuinit {
	chain hold {
		type filter hook forward priority 0;
		ip saddr $B2 udp sport 4002 counter drop
		ip daddr $B2 udp dport 4002 counter
	}
}
EOF
in_a python3 "$PACE" try 127.0.0.1 8392 30 >/dev/null & try=$!
for _ in $(seq 1 200); do
	c=$(in_r nft list table ip ksuinit | sed -n 's/.*dport 4002 counter packets \([0-9]*\).*/\1/p')
	[ "${c:-0}" -ge 4 ] && break
	sleep 0.05
done
in_r nft delete table ip ksuinit
wait "$try" || { echo "FAIL: the first connection got no data"; fail=1; }
# what the rebind needs is asked before the download (the same session, --conn 1): the
# rebind then follows the hold at once, while the source still has most of its bytes
# to send (status calls after the hold let it finish on a busy machine: nothing was
# left to cross the rebind)
p=$(cport)
# the engine holding the session, k; the rebound datagrams go to the other one's queue
k=0
[ "$(thread_sessions 1)" = 1 ] && k=1
o=$((1 - k))
h0=$(handed "$o")
in_a timeout 60 python3 "$PACE" recv 127.0.0.1 8392 "$work/dl1" $((1 << 20)) & dl=$!
wait_held "$work/dl1"
xps "$o" || { echo "FAIL: XPS on $IF_R2 cannot be set: the rebind cannot pick the queue"; fail=1; }
in_r nft -f - <<EOF
table ip ksu {
	chain post { # after routing: a local source address is no martian here
		type filter hook postrouting priority -300;
		ip saddr $A1 udp sport $p udp dport 4002 counter ip saddr set $R2 udp sport set 40998
	}
	chain pre {
		type filter hook prerouting priority -300;
		ip daddr $R2 udp sport 4002 udp dport 40998 counter ip daddr set $A1 udp dport set $p
	}
}
EOF
touch "$work/dl1.go"
wait "$dl" || true
echo "  $A1:$p -> $R2:40998: $(in_r nft list table ip ksu | grep -o 'packets [0-9]*' | tr '\n' ' ')"
check_dl "$work/dl1" "rebind" 3000
opened=$(grep -c "session .* opened" "$work/server.log" || true)
echo "  first INIT: the client sent it ${c:-0} times before the server's answers went" \
	"through; the server opened $opened session(s)"
[ "$opened" = 1 ] || { echo "FAIL: the server opened $opened sessions for one INIT, want 1"; fail=1; }
grep -q "peer moved from $A1:$p to $R2:40998" "$work/server.log" ||
	{ echo "FAIL: the server logged no move to $R2:40998"; fail=1; }
echo "  server engine $o handed $(($(handed "$o") - h0)) datagrams to engine $k, which holds the session"
[ "$(handed "$o")" -gt "$h0" ] 2>/dev/null ||
	{ echo "FAIL: engine $o handed nothing over to engine $k after the rebind"; fail=1; }
[ "$(thread_sessions "$k")" = 1 ] && [ "$(thread_sessions "$o")" = 0 ] ||
	{ echo "FAIL: engines hold $(thread_sessions 0) and $(thread_sessions 1) sessions, want the one on $k"; fail=1; }
xps || true
in_r nft delete table ip ksu

echo "restart: the server is killed and \`kcpx up\` started again (--proto kcpx)"
# R holds the client's datagrams back until the new server is up: one that reached it while
# it was still starting would get a RESET that XDP did not count, and the client's next
# session would leave nothing for pass_reset to count
on_cleanup "in_r nft delete table ip ksuhold 2>/dev/null; true"
in_r nft -f - <<EOF
table ip ksuhold {
	chain hold {
		type filter hook forward priority 0;
		ip saddr $A1 udp dport 4002 counter drop
	}
}
EOF
restart_server
in_r nft delete table ip ksuhold
if ms=$(in_a python3 "$PACE" try 127.0.0.1 8392 30) && [ "$ms" -le 8000 ]; then
	echo "  a new connection carried data $ms ms after the new server listened"
else
	echo "FAIL: no working connection within 8 s of the restart (${ms:-none} ms)"
	fail=1
fi
grep -q "the server has no such session" "$work/client.log" ||
	{ echo "FAIL: the client logged no RESET"; fail=1; }
pr=$(nat_stat pass_reset)
echo "  server XDP: pass_reset $pr, drop_session $(nat_stat drop_session)"
[ "$pr" -gt 0 ] || { echo "FAIL: XDP passed no DATA for the lost session"; fail=1; }

echo "client restart: the same source port (R rewrites it), a new session at once"
p=$(cport)
n0=$(grep -c "with $A1:$p opened" "$work/server.log" || true)
kill -KILL "$cpid" # its XDP program and pins stay: the new `kcpx up` takes over
wait "$cpid" 2>/dev/null || true
# stateless in R: its datagrams leave with port $p; the rule for the answers needs the
# new port, known once the client sent its INIT (--proto kcpx: it resends the INIT until
# the answers come through)
in_r nft -f - <<EOF
table ip ksu {
	chain pre {
		type filter hook prerouting priority -300;
		ip saddr $A1 udp dport 4002 udp sport set $p
	}
}
EOF
client
wait_tcp_port "$NS_A" 8392 20
in_a python3 "$PACE" try 127.0.0.1 8392 30 >"$work/try" & first=$!
for _ in $(seq 1 400); do [ -n "$(cport)" ] && break; sleep 0.05; done
q=$(cport)
in_r nft add rule ip ksu pre ip daddr "$A1" udp sport 4002 udp dport "$p" udp dport set "$q"
if wait "$first"; then
	echo "  the restarted client's first connection carried data after $(cat "$work/try") ms"
else
	echo "FAIL: the restarted client got no data"
	fail=1
fi
n=$(grep -c "with $A1:$p opened" "$work/server.log" || true)
[ "$n" -gt "$n0" ] || { echo "FAIL: the server opened no new session for $A1:$p"; fail=1; }
in_r nft delete table ip ksu

echo "dns: the server's name moves to $B3, the server restarts"
# written in place: the bind mount shows the same file
echo "$B3 $NAME" >"$work/hosts"
# A session opening waits 100 ms for the lookup it starts; a slower one (a busy machine)
# serves the next session, and the old address still reaches this server. So each round
# restarts the server: its RESET ends the client's session and the next one looks again.
for round in 1 2 3 4; do
	restart_server
	if ms=$(in_a python3 "$PACE" try 127.0.0.1 8392 30); then
		echo "  round $round: a new connection carried data $ms ms after the new server listened"
	else
		echo "FAIL: no working connection after the name moved"
		fail=1
		break
	fi
	grep -q "session .* with $B3:4002 opened" "$work/client.log" && break
done
grep -q "remoteaddr '$NAME:4002' is $B3:4002 now (was $B2:4002)" "$work/client.log" ||
	{ echo "FAIL: the client logged no new address for $NAME"; fail=1; }
grep -q "session .* with $B3:4002 opened" "$work/client.log" ||
	{ echo "FAIL: the client opened no session with $B3"; fail=1; }

for p in "$spid" "$cpid"; do
	kill -0 "$p" 2>/dev/null || { echo "FAIL: kcpx pid $p died"; fail=1; }
done
grep -h "moved\|no such session\|opened\|closed" "$work"/*.log | sed 's/^/  | /'
[ "$fail" -eq 0 ] || tail_logs
exit $fail
