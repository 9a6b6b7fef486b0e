#!/usr/bin/env bash
# The tunnel's edges over UDP sockets: IPv6, a unix-socket target, a target that refuses,
# garbage datagrams during a transfer, and clear errors for bad flags and config keys.
#
#   [ A ] kcpx client :8391..8394 ==udp (IPv4 + IPv6)== kcpx server :4091..4094 [ B ]
#                                                        -> echo :9091 / unix socket / nothing
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir robust
FLAGS="--crypt aes --key robust --mode fast3 --quiet"
fail=0
bad() { echo "FAIL: $*"; fail=1; }

echo "== bad flags and config keys are named"
out=$("$KCPX" client --no-such-flag 2>&1) && bad "unknown flag accepted"
echo "$out" | grep -q "no-such-flag" || bad "unknown flag not named: $out"
out=$("$KCPX" client --mtu lots 2>&1) && bad "bad number accepted"
echo "$out" | grep -q "mtu" || bad "bad value not named: $out"
echo '{"remoteaddr": "1.2.3.4:5", "frobnicate": 1}' >"$work/bad.json"
out=$("$KCPX" client -c "$work/bad.json" 2>&1) && bad "unknown key accepted"
echo "$out" | grep -q "frobnicate" || bad "unknown key not named: $out"
echo '{"remoteaddr": ' >"$work/broken.json"
out=$("$KCPX" client -c "$work/broken.json" 2>&1) && bad "broken JSON accepted"
echo "$out" | grep -q "broken.json" || bad "broken JSON not named: $out"
out=$("$KCPX" server --pprof 2>&1) && bad "--pprof accepted"
echo "$out" | grep -qi "pprof" || bad "--pprof not refused clearly: $out"
out=$("$KCPX" client --mode warp 2>&1) && bad "bad mode accepted"
echo "$out" | grep -q "warp" || bad "bad mode not named: $out"
out=$("$KCPX" client --fecparity some 2>&1) && bad "bad fecparity accepted"
echo "$out" | grep -q "fecparity" || bad "bad fecparity not named: $out"

netns_pair
ip -n "$NS_A" addr add fd00:77::1/64 dev "$IF_A" nodad
ip -n "$NS_B" addr add fd00:77::2/64 dev "$IF_B" nodad
in_b python3 "$TCPIO" echo 9091 & track_pid $!
in_b python3 - "$work/echo.sock" <<'PY' & track_pid $!
import socket, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(16)
def h(c):
    while True:
        b = c.recv(65536)
        if not b: break
        c.sendall(b)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=h, args=(c,), daemon=True).start()
PY
for _ in $(seq 200); do [ -S "$work/echo.sock" ] && break; sleep 0.1; done

start() { # start N SERVER-LISTEN TARGET CLIENT-REMOTE
	in_b "$KCPX" server -l "$2" -t "$3" $FLAGS --log "$work/s$1.log" & track_pid $!
	in_a "$KCPX" client -l "127.0.0.1:839$1" -r "$4" $FLAGS --log "$work/c$1.log" & track_pid $!
}
start 1 ":4091" "127.0.0.1:9091" "$IP_B:4091"
start 2 "[::]:4092" "127.0.0.1:9091" "[fd00:77::2]:4092"
start 3 ":4093" "$work/echo.sock" "$IP_B:4093"
start 4 ":4094" "127.0.0.1:9" "$IP_B:4094"
for i in 1 2 3 4; do
	wait_udp_port "$NS_B" "409$i" 20
	wait_tcp_port "$NS_A" "839$i" 20
done

echo "== IPv4, IPv6 and a unix-socket target carry 8 echo streams each"
for i in 1 2 3; do
	in_a timeout 60 python3 "$TCPIO" multi 127.0.0.1 "839$i" 8 $((256 << 10)) || bad "echo through tunnel $i"
done

echo "== a target that refuses: the client connection is closed, not left hanging"
t0=$SECONDS
in_a timeout 20 python3 - 8394 <<'PY' || bad "refused target: connection not closed within 20 s"
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
c.sendall(b"hello")
assert c.recv(10) == b""
PY
echo "  closed after $((SECONDS - t0)) s"

echo "== garbage datagrams while a transfer runs: counted, dropped, the session lives"
spid=$(pgrep -f "$KCPX server -l :4091 .*$work" | head -1)
in_a python3 - "$IP_B" 4091 <<'PY' & gp=$!; track_pid $gp
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + 3
n = 0
while time.time() < end and n < 200000:
    size = (n * 7919) % 1600
    s.sendto(os.urandom(size), (sys.argv[1], int(sys.argv[2])))
    n += 1
PY
in_a timeout 60 python3 "$TCPIO" multi 127.0.0.1 8391 4 $((4 << 20)) || bad "transfer during garbage flood"
wait $gp || true
kill -USR1 "$spid"
wait_log "$work/s1.log" "InCsumErrors:[1-9]" 20 || bad "garbage not counted as InCsumErrors: $(grep SNMP "$work/s1.log" | tail -1)"
kill -0 "$spid" || bad "server died"
grep "KCP SNMP" "$work/s1.log" | tail -1 | tr ' ' '\n' | grep -E "InErrs|InCsumErrors|KCPInErrors" | sed 's/^/  /'

[ "$fail" -eq 0 ] || tail_logs 15
exit $fail
