#!/usr/bin/env bash
# closewait (kcptun 2024+): when one direction of a stream ends, the other stays open for
# closewait seconds, then both close; 0 closes both at once.
#
#   [ A ] app -> kcpx client :8391 --closewait 5 ==udp :4001== [ B ] kcpx server -> target :9001
#         app -> kcpx client :8392 (0)           ==udp :4001==        (server --closewait 0)
#         app -> kcpx client :8393 (0)           ==udp :4002== [ B ] kcpx server --closewait 3
#                                                                       -> target :9002
#
# 1. client 5 s: the app sends "ping" and shuts its write side; once the client logs the end
#    of that direction, the target answers "pong": the app gets it, then EOF no sooner than
#    5 s after its shutdown.
# 2. client 0: the same half-close closes the stream at once: EOF, no pong.
# 3. server 3 s: the target sends "bye" and shuts its write side; once the server logs it,
#    the app sends "more": the target gets it, then EOF no sooner than 3 s after its
#    shutdown.
# Waits are for log lines and files; the only timed assertions are lower bounds (a timer
# that cannot fire early) and generous upper bounds.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir closewait
fail=0

wait_file() { for _ in $(seq 1 200); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

cat >"$work/cw.py" <<'PY'
import os, socket, sys, time

def wait_file(p):
    for _ in range(400):
        if os.path.exists(p):
            return
        time.sleep(0.05)
    raise SystemExit("no " + p)

def read_eof(c):
    got = b""
    while True:
        b = c.recv(4096)
        if not b:
            return got
        got += b

def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(8)
    return s

role, work = sys.argv[1], sys.argv[2]
if role == "target1":   # case 1 and 2: answer "pong" once told to, log what came and when EOF
    s = serve(9001)
    for n in range(2):
        c, _ = s.accept()
        c.settimeout(30)
        first = c.recv(4)
        if first == b"ping" and os.path.exists(work + "/case1"):
            wait_file(work + "/go1")
            c.sendall(b"pong")
        rest = read_eof(c)
        c.close()
elif role == "target2": # case 3: "bye", half-close, take what comes until EOF
    s = serve(9002)
    c, _ = s.accept()
    c.settimeout(30)
    c.sendall(b"bye")
    c.shutdown(socket.SHUT_WR)
    t0 = time.monotonic()
    got = read_eof(c)
    open(work + "/t2.out", "w").write("%s %.2f\n" % (got.decode(), time.monotonic() - t0))
elif role == "app1":    # case 1 / 2: ping, half-close, read to EOF
    port = int(sys.argv[3])
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.sendall(b"ping")
    c.shutdown(socket.SHUT_WR)
    t0 = time.monotonic()
    got = read_eof(c)
    print("%s %.2f" % (got.decode() or "-", time.monotonic() - t0))
elif role == "app3":
    c = socket.create_connection(("127.0.0.1", 8393), timeout=30)
    assert c.recv(3) == b"bye"
    wait_file(work + "/go3")
    c.sendall(b"more")
    print(read_eof(c).decode() or "-")
PY

netns_pair
in_b python3 "$work/cw.py" target1 "$work" & track_pid $!
in_b python3 "$work/cw.py" target2 "$work" & track_pid $!
in_b "$KCPX" server -l :4001 -t 127.0.0.1:9001 --key cw --closewait 0 --log "$work/s1.log" &
track_pid $!
in_b "$KCPX" server -l :4002 -t 127.0.0.1:9002 --key cw --closewait 3 --log "$work/s2.log" &
track_pid $!
in_a "$KCPX" client -l 127.0.0.1:8391 -r "$IP_B:4001" --key cw --closewait 5 \
	--log "$work/c1.log" & track_pid $!
in_a "$KCPX" client -l 127.0.0.1:8392 -r "$IP_B:4001" --key cw --log "$work/c2.log" &
track_pid $!
in_a "$KCPX" client -l 127.0.0.1:8393 -r "$IP_B:4002" --key cw --log "$work/c3.log" &
track_pid $!
# the targets listen before any stream is opened: a server that dials a port nobody holds
# yet closes the stream, and the app sees EOF without the pong
wait_tcp_port "$NS_B" 9001
wait_tcp_port "$NS_B" 9002
wait_udp_port "$NS_B" 4001
wait_udp_port "$NS_B" 4002
for p in 8391 8392 8393; do wait_tcp_port "$NS_A" $p; done

echo "== 1. client --closewait 5: the half-closed stream answers, then closes after 5 s"
touch "$work/case1"
in_a python3 "$work/cw.py" app1 "$work" 8391 >"$work/a1.out" & a1=$!
track_pid $a1
wait_line "$work/c1.log" "TCP -> stream ended; both close in 5 s \(--closewait\)" || fail=1
touch "$work/go1"
wait $a1 || fail=1
read -r got secs <"$work/a1.out" || true
echo "  app got '$got', EOF $secs s after its shutdown"
[ "$got" = pong ] || { echo "FAIL: no pong through the open direction"; fail=1; }
awk -v s="$secs" 'BEGIN { exit !(s >= 4.9 && s < 20) }' ||
	{ echo "FAIL: EOF after $secs s, not about 5"; fail=1; }
rm -f "$work/case1"

echo "== 2. client --closewait 0: the half-close closes both at once"
in_a timeout 20 python3 "$work/cw.py" app1 "$work" 8392 >"$work/a2.out" || fail=1
read -r got secs <"$work/a2.out" || true
echo "  app got '$got', EOF $secs s after its shutdown"
[ "$got" = - ] || { echo "FAIL: bytes after the close: '$got'"; fail=1; }
grep -q "closewait" "$work/c2.log" && { echo "FAIL: closewait 0 armed a wait"; fail=1; }

echo "== 3. server --closewait 3: the target's half-close leaves the other way open 3 s"
in_a python3 "$work/cw.py" app3 "$work" >"$work/a3.out" & a3=$!
track_pid $a3
wait_line "$work/s2.log" "TCP -> stream ended; both close in 3 s \(--closewait\)" || fail=1
touch "$work/go3"
wait $a3 || fail=1
wait_file "$work/t2.out" || { echo "FAIL: the target never saw EOF"; fail=1; }
read -r got secs <"$work/t2.out" || true
echo "  target got '$got', EOF $secs s after its shutdown"
[ "$got" = more ] || { echo "FAIL: the target did not get 'more'"; fail=1; }
awk -v s="$secs" 'BEGIN { exit !(s >= 2.9 && s < 20) }' ||
	{ echo "FAIL: the target's EOF after $secs s, not about 3"; fail=1; }
if [ $fail -ne 0 ]; then
	for f in "$work"/*.log "$work"/*.out; do
		echo "==> $f <=="
		cat "$f"
	done
fi
exit $fail
