#!/usr/bin/env bash
# kcptun's port ranges (2022+ example configs): "listen": ":4000-4009" serves every port,
# "remoteaddr": "host:4000-4009" gives each new session a random port of the range.
#
#   [ A ] tcpio multi -> kcpx client -c client.json ==udp 4000..4009== [ B ] kcpx server -> echo
#         (--conn 8: eight sessions)                                     ten UDP sockets
#   then the same two files under `kcpx up` on both ends:
#   [ A ] tcpio multi -> kcpx up IF_A -c client.json == XDP+AF_XDP == kcpx up IF_B -c server.json
#
# Checks: the server listens on all ten ports; 32 echo streams over 8 sessions come back
# intact; the client's sessions went to ports inside the range, more than one of them
# (`kcpx status` and `kcpx status --json` agree); `kcpx check` accepts the files. Under
# `kcpx up` the same: every stream intact, sessions on several ports of the range, and
# both XDP programs steered the traffic into AF_XDP (none of it left to the kernel, which
# a port of the range XDP did not claim would be).
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir portrange
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
# through nsenter directly (not in_b, a function that forks): $! is kcpx's pid for status
nsenter --net=/run/netns/"$NS_B" "$KCPX" server -c "$work/server.json" & spid=$!
track_pid $spid
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -c "$work/client.json" & cpid=$!
track_pid $cpid
for p in $(seq 4000 4009); do wait_udp_port "$NS_B" "$p"; done
wait_tcp_port "$NS_A" 8388
n=$(in_b ss -Huln | grep -cE ':40(0[0-9])\b' || true)
[ "$n" = 10 ] || { echo "FAIL: the server listens on $n of 10 ports"; fail=1; }

in_a timeout 120 python3 "$TCPIO" multi 127.0.0.1 8388 32 $((256 << 10)) ||
	{ echo "FAIL: echo streams over the port range"; fail=1; }
ports=$(kcpx_status "$cpid" | awk '$1 ~ /^'"$IP_B"':/ { split($1, a, ":"); print a[2] }' | sort -u)
echo "client sessions went to ports: $(echo $ports)"
[ -n "$ports" ] || { echo "FAIL: no client session in kcpx status"; fail=1; }
for p in $ports; do
	[ "$p" -ge 4000 ] && [ "$p" -le 4009 ] || { echo "FAIL: port $p outside the range"; fail=1; }
done
[ "$(echo "$ports" | wc -l)" -ge 2 ] || { echo "FAIL: eight sessions all on one port"; fail=1; }

# kcpx status --json: valid JSON with the same sessions as the table, also while another
# status connection sits silent on the socket (it waits in a slot, the loop goes on)
python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(30)' \
	"/run/kcpx/$cpid.sock" & silent=$!
track_pid $silent
kcpx_status --json "$cpid" >"$work/status.json" || { echo "FAIL: kcpx status --json"; fail=1; }
python3 -m json.tool "$work/status.json" >/dev/null || { echo "FAIL: status --json is not JSON"; cat "$work/status.json"; fail=1; }
jports=$(python3 -c 'import json,sys
t = json.load(open(sys.argv[1]))
assert len(t) == 1 and t[0]["role"] == "client" and t[0]["pid"] == int(sys.argv[2])
print("\n".join(sorted({s["peer"].rsplit(":", 1)[1] for s in t[0]["sessions"]})))' "$work/status.json" "$cpid") ||
	{ echo "FAIL: status --json fields"; fail=1; }
[ "$jports" = "$ports" ] || { echo "FAIL: status --json ports '$jports' vs table '$ports'"; fail=1; }
in_b "$KCPX" status --json >"$work/all.json" || { echo "FAIL: kcpx status --json (all)"; fail=1; }
python3 -c 'import json,sys
t = [x for x in json.load(sys.stdin) if x["pid"] == int(sys.argv[1])]
assert t and t[0]["role"] == "server" and t[0]["sessions"] and "admission" in t[0], t' \
	"$spid" <"$work/all.json" || { echo "FAIL: status --json (all) lacks the server:"; cat "$work/all.json"; fail=1; }
kill $silent 2>/dev/null || true

kill -0 $spid && kill -0 $cpid || { echo "FAIL: a daemon died"; fail=1; }
kill $cpid $spid 2>/dev/null || true
wait $cpid $spid 2>/dev/null || true

# The same files under `kcpx up`: each XDP program steers the range (server: the ten listen
# ports; client: each session's own port, from the server port that session picked).
bpffs_mount
on_cleanup "in_a $KCPX down $IF_A; in_b $KCPX down $IF_B; rmdir /sys/fs/bpf/kcpx 2>/dev/null"
sed -i "s#$work/server.log#$work/server-up.log#" "$work/server.json"
sed -i "s#$work/client.log#$work/client-up.log#" "$work/client.json"
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" -c "$work/server.json" & spid=$!
track_pid $spid
wait_log "$work/server-up.log" "AF_XDP sockets open" 20 || { echo "FAIL: kcpx up (server) is not on AF_XDP"; fail=1; }
for p in $(seq 4000 4009); do wait_udp_port "$NS_B" "$p"; done
nsenter --net=/run/netns/"$NS_A" "$KCPX" up "$IF_A" -c "$work/client.json" & cpid=$!
track_pid $cpid
wait_log "$work/client-up.log" "AF_XDP sockets open" 20 || { echo "FAIL: kcpx up (client) is not on AF_XDP"; fail=1; }
wait_tcp_port "$NS_A" 8388
in_a timeout 120 python3 "$TCPIO" multi 127.0.0.1 8388 32 $((256 << 10)) ||
	{ echo "FAIL: echo streams over the port range under kcpx up"; fail=1; }
uports=$(kcpx_status "$cpid" | awk '$1 ~ /^'"$IP_B"':/ { split($1, a, ":"); print a[2] }' | sort -u)
echo "kcpx up: client sessions went to ports: $(echo $uports)"
for p in $uports; do
	[ "$p" -ge 4000 ] && [ "$p" -le 4009 ] || { echo "FAIL: up: port $p outside the range"; fail=1; }
done
[ "$(echo "$uports" | wc -l)" -ge 2 ] || { echo "FAIL: up: eight sessions all on one port"; fail=1; }
for side in "A $IF_A" "B $IF_B"; do
	set -- $side
	ns=NS_$1
	st=$(nsenter --net=/run/netns/"${!ns}" bpftool map dump pinned /sys/fs/bpf/kcpx/"$2"/kcpx_xdp_stats |
		awk -F'[:,]' '/"steered"/ { s += $2 } /"pass_no_xsk"/ { n += $2 } /"pass_other"/ { o += $2 }
			END { print s + 0, n + 0, o + 0 }')
	echo "kcpx up $2: steered, pass_no_xsk, pass_other: $st"
	set -- $st
	# a port of the range XDP did not claim would reach the kernel's socket: pass_other
	[ "$1" -gt 100 ] && [ "$2" = 0 ] && [ $(($3 * 50)) -lt "$1" ] ||
		{ echo "FAIL: up: steered=$1 pass_no_xsk=$2 pass_other=$3"; fail=1; }
done
kill -0 $spid && kill -0 $cpid || { echo "FAIL: a kcpx up daemon died"; fail=1; }
kill $cpid $spid 2>/dev/null || true
wait $cpid $spid 2>/dev/null || true
for i in "$IF_A" "$IF_B"; do [ ! -e /sys/fs/bpf/kcpx/"$i" ] || { echo "FAIL: kcpx up left its pins on $i"; fail=1; }; done
[ $fail -ne 0 ] && tail -n 20 "$work"/*.log
exit $fail
