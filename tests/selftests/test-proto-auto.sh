#!/usr/bin/env bash
# --proto auto when the native handshake's answer is late or lost (docs/PROTOCOL.md §7).
#
#   [ A ] tcpio recv -> kcpx client 127.0.0.1:838N ==udp== kcpx server :400N [ B ] -> tcpio
#         $IP_A            (--proto auto)           (veth)     (--proto auto)  $IP_B  source
#
#   pair  what the client's kcpx probe meets                  checks
#   1     no server until the client fell back (the INITs     4 MiB download, sha256; both ends
#         meet a closed port)                                   show kcptun for that conv; after
#                                                               --reprobe 4 s a new session
#                                                               (--autoexpire 1) speaks kcpx again
#   2     the server stopped (SIGSTOP) until the client fell    download; the client took a late
#         back: its INITs wait in the socket, the RESPs come    RESP, the server replaced its
#         after the fallback                                    native session; the session
#                                                               closes once its stream is done
#                                                               and the next download speaks kcpx
#   3     nft in B drops every RESP the server sends (skipped   download; the server replaced its
#         without nft)                                          native session: both show kcptun
#   4     server --hsrate 20; first 300 copies of a real INIT   the server counts >= 200 handshakes
#         from 127.0.0.1 in B, each from a new port (client 5   over --hsrate; then client 4 (from
#         sends its INITs to a catcher on :4094 for that)       $IP_A) downloads, native both ends
#
# Before all that: flag checks (--hsrate and --reprobe out of range or not numbers, --hsrate
# in JSON, --hsrate on a client) must fail naming the flag.
#
# Every wait is for an event (a log line, a port, a status field) and bounded; the whole
# test takes about 15 s. Before the server learnt to replace a native session that never carried data, pairs 2 and 3 stalled until the
# keepalive timeout (30 s) killed the session.
set -eu
NETNS_TAG=kpa$$
. "$(dirname "$0")/../lib/netns.sh"
work_dir protoauto
SIZE=$((4 << 20))
BASE="--key proto-auto-selftest --crypt aes --mode fast3 --sndwnd 1024 --rcvwnd 1024 --quiet"

fail=0
echo "flags: bad --hsrate / --reprobe values are refused, naming the flag"
bad_flag() { # bad_flag NAME ROLE ARGS...: kcpx ROLE ARGS must exit 2 and name NAME
	local name=$1 role=$2 out rc=0
	shift 2
	out=$(timeout 10 "$KCPX" "$role" "$@" --log /dev/null 2>&1) || rc=$?
	if [ $rc -eq 2 ] && grep -q "$name" <<<"$out"; then
		echo "  $role $*: $out"
	else
		echo "FAIL: kcpx $role $* exited $rc: $out"
		fail=1
	fi
}
bad_flag hsrate server --hsrate -1
bad_flag hsrate server --hsrate 65536
bad_flag hsrate server --hsrate 10x
bad_flag hsrate client --hsrate 10
bad_flag reprobe client --reprobe -1
bad_flag reprobe client --reprobe soon
echo '{ "listen": ":4009", "hsrate": "many" }' >"$work/bad.json"
bad_flag hsrate server -c "$work/bad.json"

netns_pair
in_b python3 "$TCPIO" source 9001 "$SIZE" 5 & track_pid $!
want=$(python3 "$TCPIO" data "$SIZE" 5)
have_nft=0
command -v nft >/dev/null && have_nft=1

# The daemons start through nsenter directly (not in_a/in_b, shell functions that would
# fork a subshell) so that $! is kcpx's own pid: kcpx status and SIGSTOP need it.
declare -A spid cpid
server() { # server N [FLAGS...]: a server on :400N in B
	local n=$1
	shift
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_B" "$KCPX" server -l ":400$n" -t 127.0.0.1:9001 $BASE \
		"$@" --log "$work/server$n.log" &
	spid[$n]=$!
	track_pid "${spid[$n]}"
}
client() { # client N [FLAGS...]: a client on 127.0.0.1:838N in A
	local n=$1
	shift
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l "127.0.0.1:838$n" -r "$IP_B:400$n" \
		$BASE "$@" --log "$work/client$n.log" &
	cpid[$n]=$!
	track_pid "${cpid[$n]}"
}
dl_pids=()
download() { # download N TAG: in the background, "sha256 bytes" into $work/TAG
	in_a timeout 90 python3 "$TCPIO" recv 127.0.0.1 "838$1" >"$work/$2" 2>&1 &
	dl_pids+=($!)
}
# the downloads started so far, each bounded by its timeout
wait_downloads() {
	local p
	for p in "${dl_pids[@]}"; do wait "$p" || true; done
	dl_pids=()
}
# proto_of PID CONV: the proto column of session CONV in the table of tunnel PID
proto_of() { kcpx_status "$1" | awk -v c="$2" '$2 == c { print $3 }'; }
# conv of the first log line matching PATTERN in FILE ("session xxxxxxxx...")
conv_of() { grep -m1 "$2" "$1" | sed -n 's/.*session \([0-9a-f]\{8\}\).*/\1/p'; }

check_dl() { # check_dl TAG WHAT
	local got
	got=$(cut -d' ' -f1 "$work/$1" 2>/dev/null || true)
	if [ "$got" = "$want" ]; then
		echo "  $2: sha256 equal"
	else
		echo "FAIL: $2: got '$(cat "$work/$1" 2>/dev/null)', want $want"
		fail=1
	fi
}
check_proto() { # check_proto N CONV WANT WHAT: both ends of pair N show CONV as WANT
	local c s
	c=$(proto_of "${cpid[$1]}" "$2")
	s=$(proto_of "${spid[$1]}" "$2")
	if [ "$c" = "$3" ] && [ "$s" = "$3" ]; then
		echo "  $4: session $2 is $3 at both ends"
	else
		echo "FAIL: $4: session '$2' is '$c' at the client, '$s' at the server, want $3"
		fail=1
	fi
}

# pair 2's server is up but stopped; pair 3's loses every RESP
server 2
server 3
on_cleanup "kill -CONT ${spid[2]}"
if [ $have_nft = 1 ]; then
	in_b nft -f - <<-EOF
		table inet kpa {
			chain out {
				type filter hook output priority 0;
				udp sport 4003 udp length 80 @th,64,16 0x0103 counter drop
			}
		}
	EOF
fi
wait_udp_port "$NS_B" 4002 20
wait_udp_port "$NS_B" 4003 20
wait_tcp_port "$NS_B" 9001 20
client 1 --reprobe 4 --autoexpire 1 --scavengettl 60
client 2
client 3
for i in 1 2 3; do wait_tcp_port "$NS_A" "838$i" 20; done

echo "probes meet: no server (1), a stopped server (2), lost RESPs (3)"
kill -STOP "${spid[2]}"
t0=$SECONDS
download 1 dl1
download 2 dl2
[ $have_nft = 1 ] && download 3 dl3
# each client falls back when its probe goes unanswered; only then do the servers answer
wait_log "$work/client1.log" "falling back" 20 || fail=1
wait_log "$work/client2.log" "falling back" 20 || fail=1
kill -CONT "${spid[2]}"
server 1
wait_udp_port "$NS_B" 4001 20
wait_downloads
echo "  downloads done after $((SECONDS - t0)) s"

check_dl dl1 "server late"
conv1=$(conv_of "$work/client1.log" "falling back")
[ -n "$conv1" ] || { echo "FAIL: client 1 did not fall back"; fail=1; }
check_proto 1 "$conv1" kcptun "server late"

check_dl dl2 "late RESP"
conv2=$(conv_of "$work/client2.log" "falling back")
[ -n "$conv2" ] || { echo "FAIL: client 2 did not fall back"; fail=1; }
grep -q "session $conv2: late kcpx answer" "$work/client2.log" ||
	{ echo "FAIL: client 2 logged no late kcpx answer"; fail=1; }
grep -q "session $conv2 .*replacing the kcpx session" "$work/server2.log" ||
	{ echo "FAIL: server 2 did not replace its kcpx session"; fail=1; }
# the late-answered session took no new streams and closed once its stream was done
wait_log "$work/client2.log" "session $conv2 .*closed: retired" 30 || fail=1
download 2 dl2b
wait_downloads
check_dl dl2b "after the late RESP"
conv2b=$(grep "kcpx protocol" "$work/client2.log" | tail -1 |
	sed -n 's/.*session \([0-9a-f]\{8\}\).*/\1/p')
[ -n "$conv2b" ] && [ "$conv2b" != "$conv2" ] ||
	{ echo "FAIL: client 2's next session did not speak kcpx"; fail=1; }
[ -z "$conv2b" ] || check_proto 2 "$conv2b" kcpx "after the late RESP"

if [ $have_nft = 1 ]; then
	check_dl dl3 "lost RESPs"
	conv3=$(conv_of "$work/client3.log" "falling back")
	[ -n "$conv3" ] || { echo "FAIL: client 3 did not fall back"; fail=1; }
	check_proto 3 "$conv3" kcptun "lost RESPs"
	grep -q "replacing the kcpx session" "$work/server3.log" ||
		{ echo "FAIL: server 3 did not replace its kcpx session"; fail=1; }
	echo "  nft dropped $(in_b nft list ruleset | sed -n 's/.*counter packets \([0-9]*\).*/\1/p') RESPs"
else
	echo "  SKIP pair 3: nft is not installed"
fi

echo "re-probe: client 1's next session, 5 s after its fallback, tries kcpx again"
for _ in $(seq 1 300); do # until client 1 says its fallback is 5 s old (--reprobe 4)
	ago=$("$KCPX" status "${cpid[1]}" | sed -n 's/.*no answer \([0-9]*\) s ago.*/\1/p')
	[ "${ago:-0}" -ge 5 ] && break
	sleep 0.1
done
download 1 dl1b
wait_downloads
check_dl dl1b "re-probe"
conv1b=$(conv_of "$work/client1.log" "kcpx protocol")
[ -n "$conv1b" ] || { echo "FAIL: client 1 never spoke kcpx after its re-probe"; fail=1; }
check_proto 1 "$conv1b" kcpx "re-probe"

echo "hsrate: 300 copies of a real INIT from one source at a server with --hsrate 20"
server 4 --hsrate 20
client 5 --proto kcpx -r "$IP_B:4094" # its INITs go to the catcher below
in_b python3 - 4094 4004 300 >"$work/flood" 2>&1 <<'EOF' &
import socket, sys
catch_port, port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.bind(("0.0.0.0", catch_port))
c.settimeout(60)
while True:
    d, _ = c.recvfrom(2048)
    if len(d) == 72 and d[0] == 1 and d[1] == 2:  # version 1, INIT
        break
for _ in range(n):  # a new socket, so a new source port, each time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(d, ("127.0.0.1", port))
    s.close()
print(n)
EOF
flood=$!
wait_udp_port "$NS_B" 4094 20
wait_udp_port "$NS_B" 4004 20
wait_tcp_port "$NS_A" 8385 20
# a connection makes client 5 open a session, and so send INITs; it stays open until the
# catcher has one (bounded)
nsenter --net=/run/netns/"$NS_A" timeout 60 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8385; sleep 60' \
	>/dev/null 2>&1 &
hold=$!
track_pid $hold
wait "$flood" || true
kill "$hold" 2>/dev/null || true
for _ in $(seq 1 200); do # until the server has read the flood (it counts in its own time)
	limited=$("$KCPX" status "${spid[4]}" | sed -n 's/.*handshakes over --hsrate \([0-9]*\).*/\1/p')
	[ "${limited:-0}" -ge 200 ] && break
	sleep 0.1
done
echo "  sent $(cat "$work/flood"), over --hsrate: ${limited:-?}"
if [ "${limited:-0}" -lt 200 ] || [ "${limited:-0}" -gt 300 ]; then
	echo "FAIL: the server counted '${limited:-}' handshakes over --hsrate, want 200..300"
	fail=1
fi
client 4
wait_tcp_port "$NS_A" 8384 20
download 4 dl4
wait_downloads
check_dl dl4 "hsrate, another source"
conv4=$(conv_of "$work/client4.log" "kcpx protocol")
[ -n "$conv4" ] || { echo "FAIL: client 4 did not speak kcpx"; fail=1; }
check_proto 4 "$conv4" kcpx "hsrate, another source"

grep -h "falling back\|kcpx protocol\|late kcpx\|replacing\|probing\|hsrate" "$work"/*.log |
	sed 's/^/  | /'
for p in "${spid[@]}" "${cpid[@]}"; do
	kill -0 "$p" 2>/dev/null || { echo "FAIL: kcpx pid $p died"; fail=1; }
done
[ "$fail" -eq 0 ] || tail_logs 15
exit $fail
