#!/usr/bin/env bash
# Stream caps: --sessstreams (streams in one session) and --maxstreams (streams in all
# sessions). A stream over a cap is refused cleanly: the server answers its SYN with FIN,
# so the client's TCP connection sees EOF at once, the refusal is counted and logged
# (rate-limited), and the streams already open keep working.
#
#   [ $NS_A ]                                              [ $NS_B ]
#   client1 :8388 --conn 1 ==== udp ====> server1 :4000 --sessstreams 4  -> echo :9001
#   client2 :8389 --conn 3 ==== udp ====> server2 :4001 --maxstreams 5   -> echo :9001
#
# Asserted: 4 (then 5) connections echo, the rest read EOF without an echo; a freed place
# takes a new stream; each server logs the cap it hit.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir strcap
fail=0
bad() { echo "FAIL: $*"; fail=1; }
TUN="--key streamcaps --mode fast3 --quiet"

netns_pair
in_b python3 "$TCPIO" echo 9001 &
track_pid $!
# shellcheck disable=SC2086
in_b "$KCPX" server -l :4000 -t 127.0.0.1:9001 $TUN --sessstreams 4 --log "$work/s1.log" &
track_pid $!
# shellcheck disable=SC2086
in_b "$KCPX" server -l :4001 -t 127.0.0.1:9001 $TUN --maxstreams 5 --log "$work/s2.log" &
track_pid $!
# shellcheck disable=SC2086
in_a "$KCPX" client -l 127.0.0.1:8388 -r "$IP_B:4000" $TUN --conn 1 --log "$work/c1.log" &
track_pid $!
# shellcheck disable=SC2086
in_a "$KCPX" client -l 127.0.0.1:8389 -r "$IP_B:4001" $TUN --conn 3 --log "$work/c2.log" &
track_pid $!
wait_tcp_port "$NS_B" 9001
wait_udp_port "$NS_B" 4000
wait_udp_port "$NS_B" 4001
wait_tcp_port "$NS_A" 8388
wait_tcp_port "$NS_A" 8389

# Opens n connections one after another (each echoes or reads EOF before the next, so
# the order the server sees is the order here), holds them, prints how many echoed and
# how many were refused; then closes one echoing stream and checks a new one echoes.
# shellcheck disable=SC2016
probe='
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held, ok, refused = [], 0, 0
for i in range(n):
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    c.sendall(b"ping%03d" % i)
    d = c.recv(64)
    if d == b"ping%03d" % i:
        ok += 1
        held.append(c)
    elif d == b"":
        refused += 1
        c.close()
    else:
        raise SystemExit("unexpected %r" % d)
print("echoed", ok, "refused", refused)
for c in held:           # the open streams still move
    c.sendall(b"again")
    assert c.recv(64) == b"again"
held.pop().close()
deadline = time.time() + 20
while True:              # the server frees the place once its FIN is out
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    c.sendall(b"late")
    d = c.recv(64)
    if d == b"late":
        print("freed place taken")
        break
    c.close()
    if time.time() > deadline:
        raise SystemExit("no place freed")
    time.sleep(0.1)
'
out1=$(in_a python3 -c "$probe" 8388 7) || bad "sessstreams probe: $out1"
echo "  --sessstreams 4, 7 connections on one session: $(echo "$out1" | paste -sd,)"
[ "$(echo "$out1" | head -1)" = "echoed 4 refused 3" ] || bad "sessstreams: $out1"
out2=$(in_a python3 -c "$probe" 8389 8) || bad "maxstreams probe: $out2"
echo "  --maxstreams 5, 8 connections on 3 sessions: $(echo "$out2" | paste -sd,)"
[ "$(echo "$out2" | head -1)" = "echoed 5 refused 3" ] || bad "maxstreams: $out2"
grep -q "refused: --sessstreams 4 reached" "$work/s1.log" || bad "no --sessstreams log line"
grep -q "refused: --maxstreams 5 reached" "$work/s2.log" || bad "no --maxstreams log line"
n=$(grep -c "refused" "$work/s1.log" "$work/s2.log" | awk -F: '{ s += $2 } END { print s }')
[ "$n" -le 10 ] || bad "$n refusal lines: not rate-limited"
[ $fail -eq 0 ] || tail -5 "$work"/*.log
[ $fail -eq 0 ] && echo PASS || exit 1
