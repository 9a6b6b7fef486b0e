#!/usr/bin/env bash
# Type=notify without systemd: a fake $NOTIFY_SOCKET (tests/lib/notifysock.py) takes what
# kcpx tells the service manager.
#
#   [ A ] kcpx client :8388 ==udp== [ B ] kcpx up $IF_B server :4000 -> tcpio echo :9001
#         NOTIFY_SOCKET=$work/a.sock      NOTIFY_SOCKET=$work/b.sock
#
# Checks: READY=1 with a STATUS= line from both; the server's READY comes only once XDP
# is attached to $IF_B; STATUS follows a session coming up; SIGTERM sends STOPPING=1
# and `kcpx up` leaves no XDP program and no pin behind.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir notify
FLAGS="--crypt none --nocomp --ds 0 --ps 0 --key notify-test"
fail=0

netns_pair
for s in a b; do
	python3 "$NETNS_TOP/tests/lib/notifysock.py" "$work/$s.sock" "$work/$s.msgs" & track_pid $!
	wait_line "$work/$s.msgs" LISTENING
done
in_b python3 "$TCPIO" echo 9001 & track_pid $!

# The server under `kcpx up`: when READY=1 arrives, XDP must already be attached.
# (nsenter and env exec: $! is kcpx itself)
nsenter --net=/run/netns/"$NS_B" env NOTIFY_SOCKET="$work/b.sock" "$KCPX" up "$IF_B" server -l ":4000" \
	-t 127.0.0.1:9001 $FLAGS --log "$work/b.log" & upid=$!
track_pid $upid
wait_line "$work/b.msgs" '^READY=1\|STATUS=server :4000 \(af_xdp' || fail=1
in_b ip link show "$IF_B" | grep -q 'prog/xdp' || { echo "FAIL: READY=1 before XDP was attached"; fail=1; }

nsenter --net=/run/netns/"$NS_A" env NOTIFY_SOCKET="$work/a.sock" "$KCPX" client -l 127.0.0.1:8388 -r "$IP_B:4000" \
	$FLAGS --log "$work/a.log" & cpid=$!
track_pid $cpid
wait_line "$work/a.msgs" '^READY=1\|STATUS=client 127.0.0.1:8388 -> ' || fail=1
wait_tcp_port "$NS_A" 8388

# a stream through the tunnel: STATUS moves to one session, one stream
in_a python3 - <<'PY' &
import socket, time
s = socket.create_connection(("127.0.0.1", 8388))
s.sendall(b"x" * 1000)
time.sleep(30)
PY
echo_pid=$!
track_pid $echo_pid
wait_line "$work/b.msgs" '^STATUS=.*; 1 session, 1 stream$' || fail=1
wait_line "$work/a.msgs" '^STATUS=.*; 1 session, 1 stream$' || fail=1
kill $echo_pid 2>/dev/null || true

kill -TERM $upid $cpid
wait_line "$work/b.msgs" '^STOPPING=1' || fail=1
wait_line "$work/a.msgs" '^STOPPING=1' || fail=1
for _ in $(seq 1 200); do kill -0 $upid 2>/dev/null || break; sleep 0.1; done
kill -0 $upid 2>/dev/null && { echo "FAIL: kcpx up did not exit on SIGTERM"; fail=1; }
in_b ip link show "$IF_B" | grep -q 'prog/xdp' && { echo "FAIL: XDP left on $IF_B"; fail=1; }
[ -e "/sys/fs/bpf/kcpx/$IF_B" ] && { echo "FAIL: pins left in /sys/fs/bpf/kcpx/$IF_B"; fail=1; }
echo "== server said"; cat "$work/b.msgs"
echo "== client said"; cat "$work/a.msgs"
[ $fail -ne 0 ] && tail -n 20 "$work/a.log" "$work/b.log"
exit $fail
