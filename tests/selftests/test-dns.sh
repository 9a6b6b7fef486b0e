#!/usr/bin/env bash
# A client's --remoteaddr given as a name (kcpx client, UDP sockets): looked up again for
# each new session (dynamic DNS), without the client exiting while it does not resolve.
# The name lives in a private /etc/hosts bind-mounted in the client's mount namespace.
#
#   [ A ] pace try -> kcpx client 127.0.0.1:8393 ==udp== kcpx server $IP_B:4003  [ B ] -> pace
#                     -r $NAME:4003                      kcpx server $IP_B3:4003      source :9003
#
#   step       /etc/hosts            checks
#   missing    no $NAME              the client warns and keeps running; a connection gets
#                                    no data (no session)
#   appears    $NAME = $IP_B         the next connection carries data
#   moves      $NAME = $IP_B3 (a     the client logs the new address, its new session goes
#              second server), the   there, a connection carries data
#              first one restarts
# Every wait is for an event and bounded.
set -eu
NETNS_TAG=kdn$$
. "$(dirname "$0")/../lib/netns.sh"
work_dir dns
PACE=$NETNS_TOP/tests/lib/pace.py
FLAGS="--key dns-selftest --crypt aes --mode fast3 --quiet"
NAME=kcpx-dns-$$.test
fail=0

netns_pair
IP_B3=${IP_B%.*}.3
ip -n "$NS_B" addr add "$IP_B3/24" dev "$IF_B"
in_b python3 "$PACE" source 9003 $((64 << 10)) $((1 << 20)) & track_pid $!
: >"$work/hosts"

server() { # server ADDRESS LOG: bound to that address, so it answers from it
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l "$1:4003" -t 127.0.0.1:9003 $FLAGS \
		--log "$work/$2.log" &
	spid=$!
	track_pid "$spid"
}
server "$IP_B" server
# unshare and nsenter exec: $! is kcpx itself
# shellcheck disable=SC2086
unshare -m --propagation private sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' \
	"$work/hosts" nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8393 \
	-r "$NAME:4003" --conn 1 $FLAGS --log "$work/client.log" &
cpid=$!
track_pid "$cpid"
wait_udp_port "$NS_B" 4003 20
wait_tcp_port "$NS_A" 8393 20
wait_tcp_port "$NS_B" 9003 20

echo "missing: $NAME does not resolve"
wait_log "$work/client.log" "remoteaddr '$NAME:4003': the name does not resolve now" ||
	{ echo "FAIL: the client did not warn about the name"; fail=1; }
if in_a python3 "$PACE" try 127.0.0.1 8393 1 >/dev/null; then
	echo "FAIL: a connection carried data with no address for the server"
	fail=1
fi
kill -0 "$cpid" 2>/dev/null || { echo "FAIL: the client exited"; fail=1; }

echo "appears: $NAME is $IP_B"
# written in place: the bind mount shows the same file. Lookups that failed are retried
# at most every 5 s: the connections below wait for that, at most 60 s.
echo "$IP_B $NAME" >"$work/hosts"
if ms=$(in_a python3 "$PACE" try 127.0.0.1 8393 60); then
	echo "  a connection carried data after $ms ms"
else
	echo "FAIL: no working connection once the name resolved"
	fail=1
fi
grep -q "session .* with $IP_B:4003 opened" "$work/client.log" ||
	{ echo "FAIL: no session with $IP_B"; fail=1; }

echo "moves: $NAME is $IP_B3 (a second server), the first server restarts"
echo "$IP_B3 $NAME" >"$work/hosts"
kill -KILL "$spid"
wait "$spid" 2>/dev/null || true
server "$IP_B3" server2
wait_log "$work/server2.log" "listening on" 20
server "$IP_B" server-again # its RESET ends the client's session there
wait_log "$work/server-again.log" "listening on" 20
if ms=$(in_a python3 "$PACE" try 127.0.0.1 8393 30); then
	echo "  a connection carried data $ms ms after the new server listened"
else
	echo "FAIL: no working connection after the name moved"
	fail=1
fi
grep -q "remoteaddr '$NAME:4003' is $IP_B3:4003 now (was $IP_B:4003)" "$work/client.log" ||
	{ echo "FAIL: the client logged no new address"; fail=1; }
grep -q "session .* with $IP_B3:4003 opened" "$work/client.log" ||
	{ echo "FAIL: no session with $IP_B3"; fail=1; }
kill -0 "$cpid" 2>/dev/null || { echo "FAIL: the client exited"; fail=1; }

grep -h "remoteaddr\|opened\|closed" "$work/client.log" | sed 's/^/  | /'
[ "$fail" -eq 0 ] || tail_logs
exit $fail
