#!/usr/bin/env bash
# SIGHUP reload of -c FILE during a transfer.
#
#   [ A ] sender -> kcpx client -c client.json ==udp== [ B ] kcpx server -c server.json -> sink
#                                                           NOTIFY_SOCKET=$work/b.sock
#
# The sender pushes half its data, waits while the server reloads twice, then pushes the
# rest. Checks: a live change (quiet true -> false, keepalive 10 -> 5) is applied ("reload:
# applied" in the log, stream open/close lines appear from then on); a change that needs a
# restart (crypt) is refused with one line naming it and the tunnel keeps running with the
# old one; a file that does not parse is refused; the data arrives intact over the one
# session that was open from the start; RELOADING=1 then READY=1 reach systemd. A server
# with "user" whose 0600 root config it can no longer read refuses the reload with a line
# that says so and how to fix it, and reloads once the file is readable to that user.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir reload
HALF=$((8 << 20))
fail=0

server_json() { # server_json QUIET KEEPALIVE CRYPT
	printf '{ "listen": ":4000", "target": "127.0.0.1:9001", "key": "reload-test",
	  "crypt": "%s", "mode": "fast3", "quiet": %s, "keepalive": %s,
	  "log": "%s/server.log" }\n' "$3" "$1" "$2" "$work" >"$work/server.json"
}

netns_pair
python3 "$NETNS_TOP/tests/lib/notifysock.py" "$work/b.sock" "$work/b.msgs" & track_pid $!
wait_line "$work/b.msgs" LISTENING
in_b python3 "$TCPIO" sink 9001 "$work" & track_pid $!
server_json true 10 aes
nsenter --net=/run/netns/"$NS_B" env NOTIFY_SOCKET="$work/b.sock" \
	"$KCPX" server -c "$work/server.json" & spid=$!
track_pid $spid
printf '{ "localaddr": "127.0.0.1:8388", "remoteaddr": "%s:4000", "key": "reload-test",
  "crypt": "aes", "mode": "fast3", "quiet": true }\n' "$IP_B" >"$work/client.json"
in_a "$KCPX" client -c "$work/client.json" --log "$work/client.log" & track_pid $!
wait_line "$work/b.msgs" '^READY=1'
wait_tcp_port "$NS_A" 8388

# the sender: half, then wait for $work/go, then the other half; prints the sha256
in_a python3 - "$HALF" "$work" >"$work/sent" 2>&1 <<'PY' &
import hashlib, os, socket, sys, time
half, work = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", 8388))
h = hashlib.sha256()
def push(n, seed):
    block = bytes((seed + i) % 251 for i in range(65536))
    for _ in range(n // 65536):
        s.sendall(block)
        h.update(block)
push(half, 1)
open(os.path.join(work, "half"), "w").close()
for _ in range(600):
    if os.path.exists(os.path.join(work, "go")):
        break
    time.sleep(0.1)
push(half, 2)
s.close()
print(h.hexdigest())
PY
sender=$!
track_pid $sender
for _ in $(seq 1 300); do [ -e "$work/half" ] && break; sleep 0.1; done
[ -e "$work/half" ] || { echo "FAIL: the first half never went out"; exit 1; }

# 1. a live change
server_json false 5 aes
kill -HUP $spid
wait_line "$work/server.log" "reload: applied 'keepalive', 'quiet'" || fail=1
# 2. a change that needs a restart
server_json false 5 salsa20
kill -HUP $spid
wait_line "$work/server.log" "reload refused: 'crypt' changed, which needs a restart" || fail=1
# 3. a file that does not parse
echo '{ "listen": ' >"$work/server.json"
kill -HUP $spid
wait_line "$work/server.log" "reload refused: the configuration does not parse" || fail=1
server_json false 5 aes
touch "$work/go"

wait $sender || { echo "FAIL: sender failed: $(cat "$work/sent")"; fail=1; }
for _ in $(seq 1 300); do [ -e "$work/0.sha" ] && break; sleep 0.1; done
sent=$(tail -1 "$work/sent")
got=$(cut -d' ' -f1 "$work/0.sha" 2>/dev/null || echo none)
[ "$sent" = "$got" ] || { echo "FAIL: data differs across the reloads ($sent vs $got)"; fail=1; }
echo "$((2 * HALF)) bytes intact across three reloads"
# quiet is off now: a new stream is logged
in_a timeout 30 python3 "$TCPIO" send 127.0.0.1 8388 1000 9 >/dev/null
wait_line "$work/server.log" "stream [0-9]+ opened" || { echo "FAIL: quiet=false not applied"; fail=1; }
n=$(grep -c "session .* opened" "$work/server.log" || true)
[ "$n" = 1 ] || { echo "FAIL: $n sessions opened, the first one should have carried all"; fail=1; }
kill -0 $spid || { echo "FAIL: the server died"; fail=1; }
grep -q '^RELOADING=1' "$work/b.msgs" || { echo "FAIL: no RELOADING=1"; fail=1; }
[ "$(grep -c '^READY=1' "$work/b.msgs")" -ge 4 ] || { echo "FAIL: no READY=1 after each reload"; fail=1; }
grep -E "reload" "$work/server.log"

echo '"user": a config only root may read: SIGHUP says why and what to do'
chmod 711 "$work" # nobody may reach the file, not list the directory
printf '{ "listen": ":4100", "target": "127.0.0.1:9001", "key": "reload-test",
  "user": "nobody", "log": "%s/user.log" }\n' "$work" >"$work/user.json"
chmod 600 "$work/user.json"
# nsenter execs: $! is the daemon itself
nsenter --net=/run/netns/"$NS_B" "$KCPX" server -c "$work/user.json" 2>"$work/user.err" &
upid=$!
track_pid $upid
# the signals are taken (signalfd) before privileges go, which this line reports
wait_line "$work/user.log" "running as user nobody" || fail=1
kill -HUP $upid
wait_line "$work/user.log" "reload refused: the config file $work/user.json cannot be read by user nobody .*chmod 640" || fail=1
chgrp "$(id -g nobody)" "$work/user.json"
chmod 640 "$work/user.json"
kill -HUP $upid
wait_line "$work/user.log" "reload: (nothing changed|applied)" || fail=1
kill -0 $upid || { echo "FAIL: the \"user\" server died"; fail=1; }
[ $fail -ne 0 ] && { tail -n 30 "$work/server.log"; cat "$work/b.msgs" "$work/user.log" "$work/user.err"; }
exit $fail
