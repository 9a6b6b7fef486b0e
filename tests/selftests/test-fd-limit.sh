#!/usr/bin/env bash
# A client out of file descriptors: ulimit -n 64 (soft and hard: nothing to raise to),
# then 100 more TCP connections than fit. accept() fails with EMFILE; the daemon must
# stop watching its listener for a while instead of spinning, and the streams it has
# must keep moving.
#
#   [ $NS_A ] 100 idle TCP connections, 4 echo streams
#             kcpx client :8388 (ulimit -n 64) ==== udp ==== kcpx server :4000 [ $NS_B ]
#                                                            -> tcpio echo :9001
# Asserted: daemon CPU over the 100 connections' life < 10 % of one core (ticks from
# /proc/PID/stat, not wall-clock timing), the 4 streams echo before, during and after.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir fdlim
fail=0
bad() { echo "FAIL: $*"; fail=1; }
TUN="--key fdlimit --mode fast3 --quiet"

netns_pair
in_b python3 "$TCPIO" echo 9001 &
track_pid $!
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l :4000 -t 127.0.0.1:9001 $TUN \
	--log "$work/server.log" &
track_pid $!
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" bash -c "ulimit -n 64 && exec $KCPX client -l 127.0.0.1:8388 \
	-r $IP_B:4000 $TUN --log $work/client.log" &
CLI=$!
track_pid $CLI
wait_udp_port "$NS_B" 4000
wait_tcp_port "$NS_B" 9001
wait_tcp_port "$NS_A" 8388
grep -q "Max open files *64 *64" /proc/$CLI/limits || bad "ulimit did not take: $(grep 'open files' /proc/$CLI/limits)"

ticks() { awk '{ print $14 + $15 }' /proc/$CLI/stat; }
# 4 long streams echo a round every 0.2 s while 100 more connections are held open
in_a python3 - "$work" >"$work/py.out" 2>&1 <<'PY' &
import os, socket, sys, time
work = sys.argv[1]
def echo_round(conns, n):
    for c in conns:
        c.sendall(b"x" * n)
    for c in conns:
        got = b""
        while len(got) < n:
            d = c.recv(65536)
            if not d:
                raise SystemExit("a stream closed")
            got += d
streams = [socket.create_connection(("127.0.0.1", 8388), timeout=20) for _ in range(4)]
echo_round(streams, 1000)
held = []
for _ in range(100):
    try:
        held.append(socket.create_connection(("127.0.0.1", 8388), timeout=1))
    except OSError:
        break
print("held", len(held))
open(os.path.join(work, "go"), "w").close()
t0 = time.time()
rounds = 0
while time.time() - t0 < 5:
    echo_round(streams, 4000)   # existing streams move while accept() has no fds
    rounds += 1
    time.sleep(0.2)
open(os.path.join(work, "stop"), "w").close()
print("echo rounds during the pressure", rounds)
for c in held:
    c.close()
echo_round(streams, 1000)
PY
PY=$!
track_pid $PY
for _ in $(seq 300); do [ -e "$work/go" ] && break; sleep 0.1; done
[ -e "$work/go" ] || bad "never got to hold the connections: $(cat "$work/py.out")"
c0=$(ticks)
n0=$(date +%s%N)
for _ in $(seq 300); do [ -e "$work/stop" ] && break; sleep 0.1; done
c1=$(ticks)
n1=$(date +%s%N)
wait $PY || bad "the streams failed: $(cat "$work/py.out")"
sed 's/^/  /' "$work/py.out"
pct=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v ns=$((n1 - n0)) \
	'BEGIN { printf "%.1f", 100 * t / hz / (ns / 1e9) }')
echo "  client daemon CPU while out of fds: $pct % of a core ($((c1 - c0)) ticks)"
awk -v p="$pct" 'BEGIN { exit !(p < 10) }' || bad "the client spun: $pct % CPU"
grep -q "new connections wait a second" "$work/client.log" || bad "EMFILE not logged"
kill -0 $CLI || bad "the client died"
[ $fail -eq 0 ] || tail -20 "$work/client.log"
[ $fail -eq 0 ] && echo PASS || exit 1
