#!/usr/bin/env bash
# The syscall allow-list (io/seccomp.h) on a working tunnel, in one namespace over lo.
#
#   [ $NS_A ] tcpio send -> kcpx client :8388 --threads 2 --conn 2 -r localhost:4000
#                           ==udp (lo)== kcpx server :4000 --threads 2 -c server.json
#                           --metrics 127.0.0.1:9100 --snmplog -> tcpio sink :9001
#             kcpx client :8389 --noseccomp (the control)
#
# Checks: both daemons show "Seccomp: 2" (filter mode) and NoNewPrivs in /proc/PID/status
# once set up, the --noseccomp client "Seccomp: 0"; through the filtered processes: a
# transfer arrives intact (the client's remote address is a host name, so its resolver
# thread runs under the filter), /metrics and /healthz answer, `kcpx status` lists both,
# SIGHUP applies a live change, the log truncated as logrotate's copytruncate does goes on,
# a second transfer arrives, SIGTERM ends both with status 0; no line says a syscall was
# refused.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir seccomp
SIZE=$((4 << 20))
FLAGS="--crypt aes --key seccomp-test --mode fast3"
fail=0

status_of() { # status_of PID FIELD
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
server_json() { # server_json KEEPALIVE
	printf '{ "listen": ":4000", "target": "127.0.0.1:9001", "key": "seccomp-test",
	  "crypt": "aes", "mode": "fast3", "keepalive": %s, "threads": 2,
	  "metrics": "127.0.0.1:9100", "snmplog": "%s/snmp.log", "snmpperiod": 1,
	  "log": "%s/server.log" }\n' "$1" "$work" "$work" >"$work/server.json"
}
transfer() { # transfer N: send SIZE bytes, check the sink's N.sha
	local sent
	sent=$(in_a timeout 60 python3 "$TCPIO" send 127.0.0.1 8388 "$SIZE" "$1")
	for _ in $(seq 1 300); do [ -e "$work/$2.sha" ] && break; sleep 0.1; done
	if [ "$(cut -d' ' -f1 "$work/$2.sha" 2>/dev/null)" = "$sent" ]; then
		echo "transfer $2: $SIZE bytes intact"
	else
		echo "FAIL: transfer $2 did not arrive intact"
		fail=1
	fi
}

netns_add "$NS_A"
in_a python3 "$TCPIO" sink 9001 "$work" & track_pid $!
server_json 10
nsenter --net=/run/netns/"$NS_A" "$KCPX" server -c "$work/server.json" & spid=$!
track_pid $spid
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8388 -r localhost:4000 $FLAGS --threads 2 --conn 2 \
	--log "$work/client.log" & cpid=$!
track_pid $cpid
nsenter --net=/run/netns/"$NS_A" "$KCPX" client -l 127.0.0.1:8389 -r 127.0.0.1:4000 $FLAGS --noseccomp \
	--log "$work/control.log" & npid=$!
track_pid $npid
wait_tcp_port "$NS_A" 9100
wait_tcp_port "$NS_A" 8388
wait_tcp_port "$NS_A" 8389
# the filter goes on after the listeners: wait for it rather than race it
for _ in $(seq 1 300); do
	[ "$(status_of $spid Seccomp)" = 2 ] && [ "$(status_of $cpid Seccomp)" = 2 ] && break
	sleep 0.1
done
for p in $spid $cpid; do
	echo "pid $p: Seccomp $(status_of $p Seccomp), filters $(status_of $p Seccomp_filters)," \
		"NoNewPrivs $(status_of $p NoNewPrivs), threads $(status_of $p Threads)"
	[ "$(status_of $p Seccomp)" = 2 ] || { echo "FAIL: pid $p runs without the filter"; fail=1; }
	[ "$(status_of $p NoNewPrivs)" = 1 ] || { echo "FAIL: pid $p lacks no_new_privs"; fail=1; }
	[ "$(status_of $p Threads)" -ge 2 ] || { echo "FAIL: pid $p has one thread"; fail=1; }
done
[ "$(status_of $npid Seccomp)" = 0 ] || { echo "FAIL: --noseccomp client is filtered"; fail=1; }

transfer 1 0
[ "$(in_a curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:9100/healthz)" = 200 ] ||
	{ echo "FAIL: /healthz"; fail=1; }
in_a curl -sf --max-time 5 http://127.0.0.1:9100/metrics | grep -q '^kcpx_bytes_received_total' ||
	{ echo "FAIL: /metrics"; fail=1; }
in_a "$KCPX" status >"$work/status.txt" 2>&1 || true
grep -q "kcpx server pid $spid" "$work/status.txt" && grep -q "kcpx client pid $cpid" "$work/status.txt" ||
	{ echo "FAIL: kcpx status does not list both"; cat "$work/status.txt"; fail=1; }

# a live change on SIGHUP (the config file is read again under the filter)
server_json 5
kill -HUP $spid
wait_log "$work/server.log" 'reload: applied .*keepalive' 20 || fail=1
# logrotate's copytruncate: the daemon keeps appending to the emptied file
cp "$work/server.log" "$work/server.log.1"
: >"$work/server.log"
kill -HUP $cpid
wait_log "$work/client.log" 'reload: ' 20 || fail=1
transfer 2 1
wait_log "$work/server.log" 'stream [0-9]+ (opened|closed)' 20 || fail=1
[ "$(head -c 1 "$work/server.log" | od -An -tx1 | tr -d ' ')" != 00 ] ||
	{ echo "FAIL: the truncated log starts with a hole"; fail=1; }
[ -s "$work/snmp.log" ] || { echo "FAIL: no SNMP log rows"; fail=1; }

kill -TERM $spid $cpid
for p in $spid $cpid; do
	if wait $p; then
		echo "pid $p: exited 0 on SIGTERM"
	else
		echo "FAIL: pid $p exited $? on SIGTERM"
		fail=1
	fi
done
if grep -h seccomp "$work"/*.log*; then
	echo "FAIL: a syscall was refused (above)"
	fail=1
fi
[ $fail = 0 ] && echo PASS
exit $fail
