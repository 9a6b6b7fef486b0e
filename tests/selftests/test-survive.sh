#!/usr/bin/env bash
# Sessions that survive the network (docs/PROTOCOL.md §7b), over UDP sockets.
#
#   [ A ] pace recv -> kcpx client 127.0.0.1:8391 ==udp== kcpx server :4001 [ B ] -> pace
#         $IP_A       (--keepalive 10)    nft in A      (veth)              $IP_B   source
#                                         (stateless)                               :9001
#
#   step          what happens                                   checks
#   rebind        mid-download, nft in A rewrites the client's   sha256 equal, no stream reset,
#                 source port (and back for the answers): a NAT  longest stall <= 3 s,
#                 rebinding                                      server logs "peer moved"
#   restart       the server is killed (SIGKILL) and started     a new connection carries data
#                 again on the same port; connections are tried   within 8 s of the new server
#                 every 100 ms                                    listening; client logs the RESET
#   client        the client is killed and started again; its    its first connection works at
#   restart       datagrams leave from the same port (nft)       once; the server opens a new
#                                                                session for the same address
#   outage        mid-download, nft drops every datagram for     sha256 equal, no stream reset
#                 20 s (--keepalive 10: the timeout is 30 s)
#
# The time bounds (3 s stall, 8 s to a working connection) leave a busy machine room;
# what they catch is recovery that waits for a timer (--keepalive 10: 30 s timeout).
# Every wait is for an event (a log line, a port, bytes received) and bounded; about 40 s,
# most of it the outage. Needs nft (SKIP without it).
# SURVIVE_UP=1 runs the server as `kcpx up $IF_B server` (XDP + AF_XDP), and
# SURVIVE_STEPS picks steps (default: all four); test-xdp-survive.sh does that.
# SURVIVE_SERVER_FLAGS adds server flags; SURVIVE_HANDOFF=1 (with --threads 2) also wants
# the rebind's datagrams handed from the thread they reach to the one holding the session
# (test-threads.sh does that).
set -eu
NETNS_TAG=ksv$$
. "$(dirname "$0")/../lib/netns.sh"
. "$(dirname "$0")/../lib/download.sh"
work_dir survive
command -v nft >/dev/null || { echo "SKIP: nft is not installed"; exit 4; }
PACE=$NETNS_TOP/tests/lib/pace.py
FLAGS="--key survive-selftest --crypt aes --mode fast3 --keepalive 10 --quiet"
RATE=$((2 << 20)) # bytes per second the source sends


netns_pair
SIZE=$((6 << 20))
in_b python3 "$PACE" source 9001 "$SIZE" "$RATE" & track_pid $!
want=$(python3 "$PACE" sha "$SIZE")
fail=0

STEPS=${SURVIVE_STEPS:-rebind restart client outage}
step() { [[ " $STEPS " == *" $1 "* ]]; }
SERVER=(server)
if [ -n "${SURVIVE_UP:-}" ]; then
	bpffs_mount
	SERVER=(up "$IF_B" server)
	on_cleanup "in_b $KCPX down $IF_B >/dev/null 2>&1; rmdir /sys/fs/bpf/kcpx 2>/dev/null; true"
fi
server() {
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_B" "$KCPX" "${SERVER[@]}" -l :4001 -t 127.0.0.1:9001 $FLAGS \
		${SURVIVE_SERVER_FLAGS:-} \
		--log "$work/server.log" &
	spid=$!
	track_pid "$spid"
}
client() { # client [EXTRA FLAGS]
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8391 -r "$IP_B:4001" \
		--conn 1 $FLAGS "$@" --log "$work/client.log" &
	cpid=$!
	track_pid "$cpid"
}
# the client's UDP port towards the server
cport() { udp_sport "$NS_A" 4001 "$IP_A"; }

server
client
wait_udp_port "$NS_B" 4001 20
wait_tcp_port "$NS_A" 8391 20
wait_tcp_port "$NS_B" 9001 20
if [ -n "${SURVIVE_UP:-}" ]; then
	wait_log "$work/server.log" "listening on .*\(af_xdp\)" 20 ||
		{ echo "FAIL: the server is not on AF_XDP"; fail=1; }
fi

if step rebind; then
echo "rebind: the client's source port changes mid-download"
in_a timeout 60 python3 "$PACE" recv 127.0.0.1 8391 "$work/dl1" $((1 << 20)) & dl=$!
wait_held "$work/dl1"
p=$(cport)
in_a nft -f - <<EOF
table ip ksv {
	chain out {
		type filter hook output priority -300;
		udp dport 4001 udp sport $p counter udp sport set 40999
	}
	chain in {
		type filter hook prerouting priority -300;
		udp sport 4001 udp dport 40999 counter udp dport set $p
	}
}
EOF
on_cleanup "nft -f - <<<'delete table ip ksv' 2>/dev/null; true"
touch "$work/dl1.go"
wait "$dl" || true
echo "  client port $p -> 40999: $(in_a nft list table ip ksv | grep -o 'packets [0-9]*' | tr '\n' ' ')"
check_dl "$work/dl1" "rebind" 3000
grep -q "peer moved from $IP_A:$p to $IP_A:40999" "$work/server.log" ||
	{ echo "FAIL: the server logged no move to port 40999"; fail=1; }
if [ -n "${SURVIVE_HANDOFF:-}" ]; then
	# the client's port is even (its first session's hint) and 40999 odd: the other thread
	handed=$(kcpx_status "$spid" | sed -n 's/.*handed to another thread \([0-9]*\),.*/\1/p' |
		awk '{ s += $1 } END { print s + 0 }')
	echo "  datagrams handed to the session's thread: $handed"
	[ "$handed" -gt 0 ] || { echo "FAIL: no datagram changed threads (client port $p)"; fail=1; }
fi
in_a nft delete table ip ksv
fi

if step restart; then
echo "restart: the server is killed and started again"
tk=$(date +%s%N)
kill -KILL "$spid"
wait "$spid" 2>/dev/null || true
server
wait_udp_port "$NS_B" 4001 20
up=$((($(date +%s%N) - tk) / 1000000))
if ms=$(in_a python3 "$PACE" try 127.0.0.1 8391 30) && [ "$ms" -le 8000 ]; then
	echo "  a new connection carried data $ms ms after the new server listened" \
		"($up ms after the kill: the new process's start)"
else
	echo "FAIL: no working connection within 8 s of the restart (${ms:-none} ms)"
	fail=1
fi
grep -q "the server has no such session" "$work/client.log" ||
	{ echo "FAIL: the client logged no RESET"; fail=1; }
fi

if step client; then
echo "client restart: the same source port, a new session at once"
p=$(cport)
kill -KILL "$cpid"
wait "$cpid" 2>/dev/null || true
# whatever port the new client's socket gets, the server sees $p again (stateless NAT;
# the rule for the answers needs the new port, known once the client sent its INIT, so
# the restarted client speaks --proto kcpx: it resends the INIT until the answers come
# through instead of falling back to kcptun's format on a loaded machine)
in_a nft -f - <<EOF
table ip ksv {
	chain out {
		type filter hook output priority -300;
		udp dport 4001 udp sport set $p
	}
}
EOF
client --proto kcpx
wait_tcp_port "$NS_A" 8391 20
in_a python3 "$PACE" try 127.0.0.1 8391 30 >"$work/try" & first=$!
for _ in $(seq 1 400); do [ -n "$(cport)" ] && break; sleep 0.05; done
q=$(cport)
in_a nft add chain ip ksv in "{ type filter hook prerouting priority -300; }"
in_a nft add rule ip ksv in udp sport 4001 udp dport "$p" udp dport set "$q"
if wait "$first"; then
	echo "  the restarted client's first connection carried data after $(cat "$work/try") ms"
else
	echo "FAIL: the restarted client got no data"
	fail=1
fi
n=$(grep -c "with $IP_A:$p opened" "$work/server.log" || true)
[ "$n" -ge 2 ] || { echo "FAIL: the server opened no new session for $IP_A:$p ($n)"; fail=1; }
in_a nft delete table ip ksv
fi

if step outage; then
echo "outage: every datagram dropped for 20 s mid-download (--keepalive 10)"
in_a timeout 90 python3 "$PACE" recv 127.0.0.1 8391 "$work/dl2" $((1 << 20)) & dl=$!
wait_held "$work/dl2"
in_a nft -f - <<EOF
table ip ksv {
	chain out { type filter hook output priority 0; udp dport 4001 drop; }
	chain in { type filter hook input priority 0; udp sport 4001 drop; }
}
EOF
touch "$work/dl2.go"
t0=$SECONDS
while [ $((SECONDS - t0)) -lt 20 ]; do
	kill -0 "$dl" 2>/dev/null || break # the download ending early is a failure below
	sleep 0.5
done
in_a nft delete table ip ksv
wait "$dl" || true
check_dl "$work/dl2" "outage" ""
fi

for p in "$spid" "$cpid"; do
	kill -0 "$p" 2>/dev/null || { echo "FAIL: kcpx pid $p died"; fail=1; }
done
grep -h "moved\|no such session\|opened\|closed" "$work"/*.log | sed 's/^/  | /'
[ "$fail" -eq 0 ] || tail_logs
exit $fail
