#!/usr/bin/env bash
# kcptun's port ranges (2022+ example configs): "listen": ":4000-4009" serves every port,
# "remoteaddr": "host:4000-4009" gives each new session a random port of the range.
#
#   [ A ] tcpio multi -> kcpx client -c client.json ==udp 4000..4009== [ B ] kcpx server -> echo
#         (--conn 8: eight sessions)                                     ten UDP sockets
#
# Checks: the server listens on all ten ports; 32 echo streams over 8 sessions come back
# intact; the client's sessions went to ports inside the range, more than one of them;
# `kcpx check` accepts the files; `kcpx up` refuses a range with a message saying so.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
need_root
work=$(mktemp -d /tmp/kcpx-portrange.XXXXXX)
on_cleanup "rm -rf $work"
fail=0

netns_pair
cat >"$work/server.json" <<JSON
{ "listen": ":4000-4009", "target": "127.0.0.1:9001", "key": "range-test", "crypt": "aes-128",
  "mode": "fast3", "quiet": true, "log": "$work/server.log" }
JSON
cat >"$work/client.json" <<JSON
{ "localaddr": "127.0.0.1:8388", "remoteaddr": "$IP_B:4000-4009", "key": "range-test",
  "crypt": "aes-128", "mode": "fast3", "conn": 8, "quiet": true, "log": "$work/client.log" }
JSON
"$KCPX" check -c "$work/server.json" >/dev/null || { echo "FAIL: kcpx check server.json"; fail=1; }
"$KCPX" check -c "$work/client.json" >/dev/null || { echo "FAIL: kcpx check client.json"; fail=1; }

in_b python3 "$TCPIO" echo 9001 & track_pid $!
in_b "$KCPX" server -c "$work/server.json" & spid=$!
track_pid $spid
in_a "$KCPX" client -c "$work/client.json" & cpid=$!
track_pid $cpid
for p in $(seq 4000 4009); do wait_udp_port "$NS_B" "$p"; done
wait_tcp_port "$NS_A" 8388
n=$(in_b ss -Huln | grep -cE ':40(0[0-9])\b' || true)
[ "$n" = 10 ] || { echo "FAIL: the server listens on $n of 10 ports"; fail=1; }

in_a timeout 120 python3 "$TCPIO" multi 127.0.0.1 8388 32 $((256 << 10)) ||
	{ echo "FAIL: echo streams over the port range"; fail=1; }
ports=$(in_a "$KCPX" status | awk '$1 ~ /^'"$IP_B"':/ { split($1, a, ":"); print a[2] }' | sort -u)
echo "client sessions went to ports: $(echo $ports)"
[ -n "$ports" ] || { echo "FAIL: no client session in kcpx status"; fail=1; }
for p in $ports; do
	[ "$p" -ge 4000 ] && [ "$p" -le 4009 ] || { echo "FAIL: port $p outside the range"; fail=1; }
done
[ "$(echo "$ports" | wc -l)" -ge 2 ] || { echo "FAIL: eight sessions all on one port"; fail=1; }

# kcpx up cannot steer a range: refused, and says why
out=$(in_b "$KCPX" up "$IF_B" -c "$work/server.json" 2>&1) && { echo "FAIL: kcpx up took a range"; fail=1; }
# (the message goes to the config's log file)
grep -q "port ranges work with kcpx client|server, not under kcpx up" "$work/server.log" ||
	{ echo "FAIL: kcpx up's refusal does not say why: $out"; fail=1; }
kill -0 $spid && kill -0 $cpid || { echo "FAIL: a daemon died"; fail=1; }
[ $fail -ne 0 ] && tail -n 20 "$work/server.log" "$work/client.log"
exit $fail
