#!/usr/bin/env bash
# The syscall allow-list (io/seccomp.h) under `kcpx up` (XDP + AF_XDP) and under --tcp
# (the fake-TCP translation in TC/XDP, nft through a helper), on one veth pair.
#
#   [ $NS_A ]                                         [ $NS_B ]
#   tcpio send -> kcpx up $IF_A client :8388          kcpx up $IF_B --napi threaded -c up.json
#                 XDP + AF_XDP ====== veth ========== XDP + AF_XDP -> tcpio sink :9001
#   tcpio send -> kcpx client --tcp :8390             kcpx up $IF_B server --tcp :4001
#                 fake TCP (TCX/XDP) == veth ======== fake TCP (TCX/XDP) -> tcpio sink :9001
#
# Each pair in turn. Checks: once set up, both daemons show "Seccomp: 2" and NoNewPrivs;
# the `kcpx up` server keeps only CAP_NET_ADMIN although --napi threaded turned threaded
# NAPI on (it switches it off through an fd kept from setup); through the filtered
# daemons: a transfer arrives intact, `kcpx status`, `kcpx stats IFACE` and /metrics
# answer, SIGHUP applies a live change (the config file read again), a second transfer
# arrives, SIGTERM ends both with status 0 and leaves no XDP or TC program, no pin, no
# threaded NAPI, no nftables table; no log line says a syscall was refused.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir secup
[ -x "$KCPX" ] || { echo "missing $KCPX: run make first" >&2; exit 1; }
command -v nft >/dev/null || { echo "SKIP: no nft command"; exit 4; }
SIZE=$((4 << 20))
FLAGS="--crypt aes --key seccomp-up --mode fast3"
fail=0
bad() { echo "FAIL: $*"; fail=1; }

bpffs_mount
NETNS_QUEUES=2 netns_pair
on_cleanup "in_a $KCPX down $IF_A >/dev/null 2>&1; in_b $KCPX down $IF_B >/dev/null 2>&1; rmdir /sys/fs/bpf/kcpx 2>/dev/null; true"

status_of() { # PID FIELD
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
threaded() { ip netns exec "$NS_B" cat "/sys/class/net/$IF_B/threaded"; }
tables() { in_ns "$1" nft list tables inet 2>/dev/null | grep -c 'kcpx_tcp_' || true; }
up_json() { # KEEPALIVE
	printf '{ "listen": ":4000", "target": "127.0.0.1:9001", "key": "seccomp-up",
	  "crypt": "aes", "mode": "fast3", "keepalive": %s,
	  "metrics": "127.0.0.1:9100", "log": "%s/up-server.log" }\n' "$1" "$work" >"$work/up.json"
}
filtered() { # PID...: wait until every one is under the filter (it goes on after setup)
	local p ok
	for _ in $(seq 1 200); do
		ok=1
		for p in "$@"; do [ "$(status_of "$p" Seccomp)" = 2 ] || ok=0; done
		[ $ok = 1 ] && break
		sleep 0.1
	done
	for p in "$@"; do
		echo "  pid $p: Seccomp $(status_of "$p" Seccomp), NoNewPrivs $(status_of "$p" NoNewPrivs)," \
			"CapEff $(status_of "$p" CapEff)"
		[ "$(status_of "$p" Seccomp)" = 2 ] || bad "pid $p runs without the filter"
		[ "$(status_of "$p" NoNewPrivs)" = 1 ] || bad "pid $p lacks no_new_privs"
	done
}
transfer() { # PORT N: SIZE bytes to the client's PORT, the sink's N.sha compared
	local sent
	sent=$(in_a timeout 120 python3 "$TCPIO" send 127.0.0.1 "$1" "$SIZE" "$2") || true
	for _ in $(seq 1 600); do [ -e "$work/sink/$2.sha" ] && break; sleep 0.1; done
	if [ -n "$sent" ] && [ "$(cut -d' ' -f1 "$work/sink/$2.sha" 2>/dev/null)" = "$sent" ]; then
		echo "  transfer $2: $SIZE bytes intact"
	else
		bad "transfer $2 did not arrive intact"
	fi
}
stop() { # PID...: SIGTERM, each must exit 0
	local p
	kill -TERM "$@"
	for p in "$@"; do
		if wait "$p"; then echo "  pid $p: exited 0 on SIGTERM"; else bad "pid $p exited $? on SIGTERM"; fi
	done
}
no_trace() { # NS IFACE
	ip -n "$1" link show "$2" | grep -q "prog/xdp" && bad "XDP left on $2"
	in_ns "$1" tc filter show dev "$2" egress | grep -q kcpx && bad "TC left on $2"
	in_ns "$1" bpftool net show dev "$2" 2>/dev/null | grep -q 'kcpx_' && bad "a kcpx program left on $2"
	[ -e "/sys/fs/bpf/kcpx/$2" ] && bad "pins left for $2"
	return 0
}
refused() { # any "seccomp:" line is a syscall the filter refused
	if grep -h "seccomp" "$work"/*.log; then bad "a syscall was refused (above)"; fi
}

mkdir -p "$work/sink"
in_b python3 "$TCPIO" sink 9001 "$work/sink" & track_pid $!
wait_tcp_port "$NS_B" 9001

echo "== kcpx up, both ends"
[ "$(threaded)" = 0 ] || { echo "SKIP: $IF_B polls in threads already"; exit 4; }
up_json 10
# nsenter execs kcpx: $! is the daemon itself
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" --napi threaded -c "$work/up.json" & srv=$!
track_pid $srv
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" up "$IF_A" client -l 127.0.0.1:8388 -r "$IP_B:4000" \
	$FLAGS --log "$work/up-client.log" & cli=$!
track_pid $cli
wait_log "$work/up-server.log" "listening" 30 || bad "the kcpx up server did not start"
wait_tcp_port "$NS_A" 8388 30
grep -q "(af_xdp)" "$work/up-server.log" || bad "the server is not on AF_XDP"
filtered $srv $cli
[ "$(threaded)" = 1 ] || bad "--napi threaded did not turn threaded NAPI on"
# CAP_NET_ADMIN (12) only, at both ends: restoring NAPI no longer needs CAP_SYS_ADMIN,
# and the client detaches XDP/TC at exit as the server does
for p in $srv $cli; do
	[ "$(status_of $p CapEff)" = 0000000000001000 ] ||
		bad "kcpx up pid $p keeps CapEff $(status_of $p CapEff), not CAP_NET_ADMIN only"
done
transfer 8388 0
in_b "$KCPX" status >"$work/status.txt" 2>&1 || true
grep -q "kcpx server pid $srv" "$work/status.txt" || { bad "kcpx status does not list the server"; cat "$work/status.txt"; }
in_b "$KCPX" stats "$IF_B" >"$work/stats.txt" 2>&1 || bad "kcpx stats $IF_B failed: $(cat "$work/stats.txt")"
in_b curl -sf --max-time 10 http://127.0.0.1:9100/metrics | grep -q '^kcpx_bytes_received_total' ||
	bad "/metrics under kcpx up"
up_json 5
kill -HUP $srv
wait_log "$work/up-server.log" 'reload: applied .*keepalive' 20 || bad "SIGHUP under kcpx up"
transfer 8388 1
stop $cli $srv
no_trace "$NS_A" "$IF_A"
no_trace "$NS_B" "$IF_B"
[ "$(threaded)" = 0 ] || bad "threaded NAPI left on after SIGTERM"

echo "== --tcp: kcpx client --tcp, kcpx up $IF_B server --tcp"
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" server --tcp -l :4001 -t 127.0.0.1:9001 \
	$FLAGS --metrics 127.0.0.1:9101 --log "$work/tcp-server.log" & srv=$!
track_pid $srv
wait_tcp_port "$NS_B" 4001 30
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" client --tcp -l 127.0.0.1:8390 -r "$IP_B:4001" \
	$FLAGS --log "$work/tcp-client.log" & cli=$!
track_pid $cli
wait_tcp_port "$NS_A" 8390 30
filtered $srv $cli
transfer 8390 2
# the translation was attached and TCP_REPAIR used after setup: CAP_NET_ADMIN is enough
for p in $srv $cli; do
	[ "$(status_of $p CapEff)" = 0000000000001000 ] ||
		bad "--tcp pid $p keeps CapEff $(status_of $p CapEff), not CAP_NET_ADMIN only"
done
[ "$(tables "$NS_A")" = 1 ] && [ "$(tables "$NS_B")" = 1 ] || bad "the nftables tables are not there"
in_b "$KCPX" status >"$work/status.txt" 2>&1 || true
grep -q "kcpx server pid $srv" "$work/status.txt" || { bad "kcpx status does not list the --tcp server"; cat "$work/status.txt"; }
in_b "$KCPX" stats "$IF_B" >"$work/stats.txt" 2>&1 || bad "kcpx stats $IF_B (--tcp) failed: $(cat "$work/stats.txt")"
in_b curl -sf --max-time 10 http://127.0.0.1:9101/metrics | grep -q '^kcpx_ftcp_flows' ||
	bad "/metrics under --tcp"
kill -HUP $srv $cli
wait_log "$work/tcp-server.log" 'reload: ' 20 || bad "SIGHUP under --tcp (server)"
wait_log "$work/tcp-client.log" 'reload: ' 20 || bad "SIGHUP under --tcp (client)"
transfer 8390 3
stop $cli $srv
[ "$(tables "$NS_A")" = 0 ] && [ "$(tables "$NS_B")" = 0 ] || bad "nftables tables left after SIGTERM"
no_trace "$NS_A" "$IF_A"
no_trace "$NS_B" "$IF_B"
refused
[ $fail = 0 ] && echo PASS
exit $fail
