#!/usr/bin/env bash
# --tcp across a router that drops every UDP datagram and tracks TCP state.
#
#   [ A ] tcpio -> kcpx client --tcp      [ M ] forward: udp drop,       [ B ] kcpx server --tcp
#         $IP_A  ==fake TCP==  a0 --- m0 (ct state invalid drop) m1 --- b0  $IP_B -> tcpio
#
# Checks: a port range (--conn 4 sessions, flows to several ports of :4010-4013, echo
# streams intact); `kcpx status` (text and --json) and /metrics count the flows, handshakes, RSTs, segments and
# drops; 64 MiB each way intact under `kcpx client|server --tcp`, 16 MiB up over IPv6,
# and 64 MiB up under `kcpx up IFACE client|server --tcp` at both ends, whose counters `kcpx stats IFACE` shows
# (pinned, gone after a kill -9 and `kcpx down IFACE`), as `kcpx stats -p PID` does for any --tcp daemon; M forwarded no UDP and conntrack found no segment out of
# its TCP window (the flow passes for an established connection); RSTs injected by M mid
# transfer make the client shake hands again on the same 4-tuple and the transfer goes
# on intact; without TCP window scaling at one end both ends warn (with it, neither does);
# the nftables tables are there while the daemons run and gone after SIGTERM,
# and after a kill -9 until `kcpx down`; no program is left on the interfaces.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir selftest
SIZE=${SIZE:-$((64 << 20))}
FLAGS=${FLAGS:---crypt none --nocomp --ds 0 --ps 0 --mode fast3 --sndwnd 1024 --rcvwnd 1024}

NS_M=${NETNS_TAG}m
n=$_netns_n
IP_A=10.$n.1.1
IP_B=10.$n.2.2
IF_A=${NETNS_TAG}a0
IF_B=${NETNS_TAG}b0
on_cleanup "$KCPX down $IF_A >/dev/null 2>&1; $KCPX down $IF_B >/dev/null 2>&1; true"
netns_routed "$NS_M" "${NETNS_TAG}m0" "10.$n.1.2" "${NETNS_TAG}m1" "10.$n.2.1"
ip -n "$NS_A" addr add "fd00:$n:1::1/64" dev "$IF_A" nodad
ip -n "$NS_M" addr add "fd00:$n:1::2/64" dev "${NETNS_TAG}m0" nodad
ip -n "$NS_M" addr add "fd00:$n:2::1/64" dev "${NETNS_TAG}m1" nodad
ip -n "$NS_B" addr add "fd00:$n:2::2/64" dev "$IF_B" nodad
ip -n "$NS_A" -6 route add default via "fd00:$n:1::2"
ip -n "$NS_B" -6 route add default via "fd00:$n:2::1"
in_ns "$NS_M" sysctl -qw net.ipv6.conf.all.forwarding=1
in_ns "$NS_M" nft -f - <<EOF
table inet mid {
	chain f {
		type filter hook forward priority 0; policy accept;
		meta l4proto udp counter drop
		ct state invalid counter drop
		meta l4proto tcp counter
	}
}
EOF
mid_count() { in_ns "$NS_M" nft list chain inet mid f | awk -v w="$1" '$0 ~ w { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'; }
tables() { in_ns "$1" nft list tables inet 2>/dev/null | grep -c 'kcpx_tcp_' || true; }
wait_log() { # FILE PATTERN [COUNT]: until PATTERN appears COUNT times in FILE (60 s)
	local i
	for ((i = 0; i < 600; i++)); do
		local n
		n=$(grep -c "$2" "$1" 2>/dev/null || true)
		[ "${n:-0}" -ge "${3:-1}" ] && return 0
		sleep 0.1
	done
	echo "timed out waiting for '$2' in $1" >&2
	return 1
}
no_progs() { # NS IFACE: no XDP and no TCX program left
	! ip -n "$1" -d link show dev "$2" | grep -q 'prog/xdp' &&
		! in_ns "$1" bpftool net show dev "$2" 2>/dev/null | grep -q 'kcpx_'
}

fail=0
in_b python3 "$TCPIO" sink 9001 "$work" & track_pid $!
in_b python3 "$TCPIO" source 9002 "$SIZE" 7 & track_pid $!
# shellcheck disable=SC2086
in_b "$KCPX" server --tcp -l :4001 -t 127.0.0.1:9001 $FLAGS -v 1 --quiet \
	--log "$work/server1.log" & track_pid $!
# shellcheck disable=SC2086
in_b "$KCPX" server --tcp -l :4002 -t 127.0.0.1:9002 $FLAGS -v 1 --quiet \
	--log "$work/server2.log" & track_pid $!
wait_tcp_port "$NS_B" 4001
wait_tcp_port "$NS_B" 4002
for i in 1 2; do
	# shellcheck disable=SC2086
	in_a "$KCPX" client --tcp -l "127.0.0.1:838$i" -r "$IP_B:400$i" $FLAGS -v 1 --quiet \
		--metrics "127.0.0.1:910$i" --log "$work/client$i.log" & track_pid $!
	wait_tcp_port "$NS_A" "838$i"
done
[ "$(tables "$NS_A")" = 2 ] && [ "$(tables "$NS_B")" = 2 ] ||
	{ echo "FAIL: expected 2 kcpx_tcp tables on each side"; fail=1; }

echo "upload: $SIZE bytes A -> B over fake TCP, RSTs injected by M on the way"
(
	# once data flows, M answers the client's segments with RSTs (as a middlebox that
	# dropped the flow would) until the client has reset; then lets it shake hands again
	for ((i = 0; i < 600; i++)); do
		[ "$(mid_count 'meta l4proto tcp')" -ge 3000 ] && break
		sleep 0.05
	done
	mid_count 'ct state invalid' >"$work/inv0"
	in_ns "$NS_M" nft insert rule inet mid f ip saddr "$IP_A" tcp dport 4001 \
		reject with tcp reset
	wait_log "$work/client1.log" "reset, new handshake" || exit 1
	in_ns "$NS_M" nft delete rule inet mid f handle \
		"$(in_ns "$NS_M" nft -a list chain inet mid f | awk '/reject/ { print $NF }')"
) >"$work/rst.log" 2>&1 &
rstpid=$!
sent=$(in_a timeout 300 python3 "$TCPIO" send 127.0.0.1 8381 "$SIZE" 7)
for _ in $(seq 1 300); do [ -e "$work/0.sha" ] && break; sleep 0.1; done
got=$(cut -d' ' -f1 "$work/0.sha" 2>/dev/null || echo none)
[ "$sent" = "$got" ] || { echo "FAIL: upload sha256 differs ($sent vs $got)"; fail=1; }
wait "$rstpid" || { echo "FAIL: the RST injection did not happen as planned"; cat "$work/rst.log"; fail=1; }
grep -q "reset, new handshake" "$work/client1.log" || { echo "FAIL: no re-handshake after RST"; fail=1; }
[ "$(grep -c "flow .* established" "$work/client1.log")" -ge 2 ] ||
	{ echo "FAIL: the client did not shake hands again"; fail=1; }

echo "counters: kcpx status and /metrics of client 1 (one RST taken, a new handshake)"
# the block of `kcpx status` of the tunnel on ADDR
status_of() { in_ns "$1" "$KCPX" status | awk -v a="$2" '/^kcpx / { on = index($0, " on " a " ") > 0 } on'; }
status_of "$NS_A" 127.0.0.1:8381 >"$work/status-a.txt"
status_of "$NS_B" :4001 >"$work/status-b.txt"
grep -Eq -- '--tcp flows: 1 established, [2-9][0-9]* handshakes .* ended: [1-9][0-9]* by RST' \
	"$work/status-a.txt" || { echo "FAIL: client's --tcp flow counters"; cat "$work/status-a.txt"; fail=1; }
grep -Eq -- '--tcp segments: out [1-9][0-9]{4,} .* RST in [1-9]' "$work/status-a.txt" ||
	{ echo "FAIL: client's --tcp segment counters"; cat "$work/status-a.txt"; fail=1; }
grep -Eq -- '--tcp flows: 1 established, [2-9][0-9]* handshakes' "$work/status-b.txt" &&
	grep -Eq -- '--tcp segments: out [0-9]+ .*, in [1-9][0-9]{4,} ' "$work/status-b.txt" &&
	grep -Eq -- '--tcp dropped: out without a flow [0-9]+, out malformed 0, out errors 0; in blind RST 0, in truncated 0' \
		"$work/status-b.txt" || { echo "FAIL: server's --tcp counters"; cat "$work/status-b.txt"; fail=1; }
# kcpx status --json: the same counters in the tunnel's "tcp" object (`kcpx status` asks
# every kcpx on the host: pick ours by address and network namespace)
status_json() { # NS ADDR: that tunnel's object
	in_ns "$1" "$KCPX" status --json | python3 -c 'import json, os, sys
ns = os.stat("/run/netns/" + sys.argv[1]).st_ino
def mine(x):
    try:
        return x.get("addr") == sys.argv[2] and os.stat("/proc/%d/ns/net" % x["pid"]).st_ino == ns
    except OSError:
        return False
print(json.dumps([x for x in json.load(sys.stdin) if mine(x)][0]))' "$1" "$2"
}
status_json "$NS_A" 127.0.0.1:8381 | python3 -c 'import json, sys
c = json.load(sys.stdin)["tcp"]
assert c["flows"] == 1 and c["handshakes"] >= 2 and c["ended"]["rst"] >= 1, c
assert c["segments"]["out"] >= 10000 and c["segments"]["rst_in"] >= 1, c' ||
	{ echo "FAIL: client's status --json lacks the --tcp counters"; fail=1; }
status_json "$NS_B" :4001 | python3 -c 'import json, sys
c = json.load(sys.stdin)["tcp"]
assert c["flows"] == 1 and c["segments"]["in"] >= 10000, c
assert c["dropped"] == dict(out_no_flow=c["dropped"]["out_no_flow"], out_malformed=0,
                            out_error=0, in_blind_rst=0, in_truncated=0), c' ||
	{ echo "FAIL: server's status --json lacks the --tcp counters"; fail=1; }
# kcpx stats -p: the same maps as under `kcpx up` (nothing pinned here), from the daemon
cpid=$(status_json "$NS_A" 127.0.0.1:8381 | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
"$KCPX" stats -p "${cpid:-0}" >"$work/stats-p.txt" 2>&1 || true
grep -q '^kcpx_ftcp_stats$' "$work/stats-p.txt" &&
	grep -Eq '^  tx_segs +[1-9][0-9]{4,}$' "$work/stats-p.txt" &&
	grep -Eq '^  rx_rst +[1-9]' "$work/stats-p.txt" &&
	grep -q '^kcpx_ftcp_conns$' "$work/stats-p.txt" &&
	grep -Eq '^  flows +1$' "$work/stats-p.txt" &&
	grep -Eq '^  end_reset +[1-9]' "$work/stats-p.txt" &&
	grep -Eq '^  OutPkts +[1-9]' "$work/stats-p.txt" ||
	{ echo "FAIL: kcpx stats -p of the --tcp client"; cat "$work/stats-p.txt"; fail=1; }
in_a curl -sf --max-time 5 http://127.0.0.1:9101/metrics >"$work/metrics.txt" || true
grep -q '^kcpx_ftcp_flows 1$' "$work/metrics.txt" &&
	grep -Eq '^kcpx_ftcp_flows_ended_total\{reason="rst"\} [1-9]' "$work/metrics.txt" &&
	grep -Eq '^kcpx_ftcp_segments_total\{dir="out"\} [1-9]' "$work/metrics.txt" &&
	grep -q '^kcpx_ftcp_dropped_total{dir="in",reason="blind_rst"} 0$' "$work/metrics.txt" ||
	{ echo "FAIL: --tcp series in /metrics"; grep kcpx_ftcp "$work/metrics.txt"; fail=1; }

inv1=$(mid_count 'ct state invalid')
echo "download: $SIZE bytes B -> A"
want=$(python3 "$TCPIO" data "$SIZE" 7)
read -r got gotn < <(in_a timeout 300 python3 "$TCPIO" recv 127.0.0.1 8382)
[ "$want" = "$got" ] || { echo "FAIL: download sha256 differs ($gotn bytes)"; fail=1; }

echo "IPv6: $((SIZE / 4)) bytes A -> B"
# shellcheck disable=SC2086
in_b "$KCPX" server --tcp -l "[::]:4003" -t 127.0.0.1:9001 $FLAGS -v 1 --quiet \
	--log "$work/server6.log" & track_pid $!
wait_tcp_port "$NS_B" 4003
# shellcheck disable=SC2086
in_a "$KCPX" client --tcp -l 127.0.0.1:8383 -r "[fd00:$n:2::2]:4003" $FLAGS -v 1 --quiet \
	--log "$work/client6.log" & track_pid $!
wait_tcp_port "$NS_A" 8383
sent=$(in_a timeout 300 python3 "$TCPIO" send 127.0.0.1 8383 $((SIZE / 4)) 9)
for _ in $(seq 1 300); do [ -e "$work/1.sha" ] && break; sleep 0.1; done
got=$(cut -d' ' -f1 "$work/1.sha" 2>/dev/null || echo none)
[ "$sent" = "$got" ] || { echo "FAIL: IPv6 upload sha256 differs"; fail=1; }
grep -q "flow .* <-> \[fd00:$n:2::2\]:4003 established" "$work/client6.log" ||
	{ echo "FAIL: no IPv6 fake-TCP flow"; fail=1; }
rm -f "$work"/*.sha

echo "port range: --conn 4 sessions to :4010-4013, a fake-TCP flow to each port used"
in_b python3 "$TCPIO" echo 9003 & track_pid $!
# shellcheck disable=SC2086
in_b "$KCPX" server --tcp -l :4010-4013 -t 127.0.0.1:9003 $FLAGS -v 1 --quiet \
	--log "$work/server-range.log" & track_pid $!
for p in 4010 4011 4012 4013; do wait_tcp_port "$NS_B" $p; done
# shellcheck disable=SC2086
in_a "$KCPX" client --tcp -l 127.0.0.1:8384 -r "$IP_B:4010-4013" --conn 4 $FLAGS -v 1 \
	--quiet --log "$work/client-range.log" & track_pid $!
wait_tcp_port "$NS_A" 8384
in_a timeout 120 python3 "$TCPIO" multi 127.0.0.1 8384 16 $((256 << 10)) ||
	{ echo "FAIL: echo streams over a port range with --tcp"; fail=1; }
rports=$(grep -o "flow [0-9]* <-> $IP_B:40[0-9]* established" "$work/client-range.log" |
	sed 's/.*://; s/ .*//' | sort -u)
echo "client flows went to ports: $(echo $rports)"
for p in $rports; do
	[ "$p" -ge 4010 ] && [ "$p" -le 4013 ] || { echo "FAIL: flow to port $p outside the range"; fail=1; }
done
[ "$(echo "$rports" | grep -c .)" -ge 2 ] || { echo "FAIL: four sessions, flows to fewer than 2 ports"; fail=1; }
status_of "$NS_B" :4010-4013 | grep -Eq -- '--tcp flows: [2-9] established' ||
	{ echo "FAIL: the range server does not count its flows"; status_of "$NS_B" :4010-4013; fail=1; }

udp=$(mid_count 'meta l4proto udp')
inv0=$(cat "$work/inv0" 2>/dev/null || echo none)
inv2=$(mid_count 'ct state invalid')
# While the client shakes hands again, segments of the old flow still in flight are
# invalid to conntrack: that phase is not counted.
echo "M: UDP dropped $udp; conntrack invalid: $inv0 before the RSTs, $((inv2 - inv1)) in the download"
[ "$udp" = 0 ] || { echo "FAIL: UDP left A or B (M dropped $udp datagrams)"; fail=1; }
[ "$inv0" = 0 ] && [ "$inv2" = "$inv1" ] ||
	{ echo "FAIL: conntrack found segments out of window"; fail=1; }

echo "SIGTERM: tables and programs go"
pkill -TERM -f "$KCPX (client|server) --tcp -l .*$work" || true
for _ in $(seq 1 300); do pgrep -f "$KCPX .*$work" >/dev/null || break; sleep 0.1; done
[ "$(tables "$NS_A")" = 0 ] && [ "$(tables "$NS_B")" = 0 ] ||
	{ echo "FAIL: kcpx_tcp tables left after SIGTERM"; fail=1; }
no_progs "$NS_A" "$IF_A" && no_progs "$NS_B" "$IF_B" ||
	{ echo "FAIL: programs left after SIGTERM"; fail=1; }

echo "kcpx up $IF_A client --tcp, kcpx up $IF_B server --tcp: $SIZE bytes A -> B"
# nsenter execs: $! is the daemon itself, for the kill -9 below
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" server --tcp -l :4001 \
	-t 127.0.0.1:9001 $FLAGS -v 1 --quiet --log "$work/up.log" & uppid=$!
track_pid $uppid
# shellcheck disable=SC2086
nsenter --net=/run/netns/"$NS_A" "$KCPX" up "$IF_A" client --tcp -l 127.0.0.1:8391 -r "$IP_B:4001" \
	$FLAGS -v 1 --quiet --log "$work/client3.log" & clipid=$!
track_pid $clipid
wait_tcp_port "$NS_B" 4001 || fail=1
wait_tcp_port "$NS_A" 8391 || fail=1
sent=$(in_a timeout 300 python3 "$TCPIO" send 127.0.0.1 8391 "$SIZE" 7 || true)
# the sink's third connection
for _ in $(seq 1 300); do [ -e "$work/2.sha" ] && break; sleep 0.1; done
got=$(cut -d' ' -f1 "$work/2.sha" 2>/dev/null || echo none)
[ "$sent" = "$got" ] || { echo "FAIL: kcpx up upload sha256 differs"; fail=1; }

echo "kcpx stats $IF_B, $IF_A: the --tcp counters pinned by kcpx up"
# userspace's flow counts are published once a second: wait for the handshake to show
for _ in $(seq 1 200); do
	in_b "$KCPX" stats "$IF_B" >"$work/stats-up.txt" 2>&1 || true
	in_a "$KCPX" stats "$IF_A" >"$work/stats-up-a.txt" 2>&1 || true
	grep -Eq '^  handshakes +[1-9]' "$work/stats-up.txt" &&
		grep -Eq '^  handshakes +[1-9]' "$work/stats-up-a.txt" && break
	sleep 0.1
done
grep -Eq '^  tx_segs +[1-9][0-9]{4,}$' "$work/stats-up-a.txt" &&
	grep -Eq '^  flows +1$' "$work/stats-up-a.txt" ||
	{ echo "FAIL: kcpx stats $IF_A lacks the --tcp counters"; cat "$work/stats-up-a.txt"; fail=1; }
grep -q '^kcpx_ftcp_stats$' "$work/stats-up.txt" &&
	grep -Eq '^  rx_segs +[1-9][0-9]{4,}$' "$work/stats-up.txt" &&
	grep -Eq '^  rx_trunc +0$' "$work/stats-up.txt" &&
	grep -q '^kcpx_ftcp_conns$' "$work/stats-up.txt" &&
	grep -Eq '^  flows +1$' "$work/stats-up.txt" &&
	grep -Eq '^  handshakes +[1-9]' "$work/stats-up.txt" ||
	{ echo "FAIL: kcpx stats $IF_B lacks the --tcp counters"; cat "$work/stats-up.txt"; fail=1; }
in_b "$KCPX" stats --json "$IF_B" | grep -q '"kcpx_ftcp_stats":{"tx_segs":' ||
	{ echo "FAIL: kcpx stats --json $IF_B lacks the --tcp counters"; fail=1; }
# the daemon's own answer (kcpx stats -p) names the --tcp counters as the pinned maps do
ftcp_fields() { awk '/^[^ ]/ { m = $1 } m ~ /^kcpx_ftcp_/ && /^  / { print m, $1 }'; }
in_b "$KCPX" stats "$IF_B" | ftcp_fields >"$work/fields-pin.txt"
"$KCPX" stats -p "$uppid" | ftcp_fields >"$work/fields-pid.txt"
[ -s "$work/fields-pin.txt" ] && cmp -s "$work/fields-pin.txt" "$work/fields-pid.txt" ||
	{ echo "FAIL: kcpx stats -p and kcpx stats IFACE name the --tcp counters differently"; diff "$work/fields-pin.txt" "$work/fields-pid.txt"; fail=1; }

echo "kill -9: the tables stay until kcpx down, the programs go with the process"
kill -9 "$uppid" "$clipid"
wait "$uppid" "$clipid" 2>/dev/null || true
for _ in $(seq 1 300); do kill -0 "$uppid" 2>/dev/null || kill -0 "$clipid" 2>/dev/null || break; sleep 0.1; done
[ "$(tables "$NS_A")" = 1 ] && [ "$(tables "$NS_B")" = 1 ] ||
	{ echo "FAIL: expected the dead daemons' tables"; fail=1; }
in_a "$KCPX" down | grep -q "removed the --tcp nftables rules of 1" || { echo "FAIL: kcpx down (A)"; fail=1; }
in_a "$KCPX" down "$IF_A" >/dev/null 2>&1 || true
[ -e "/sys/fs/bpf/kcpx/$IF_B/kcpx_ftcp_stats" ] ||
	{ echo "FAIL: the --tcp counter pins went with kill -9 (kcpx down has nothing to do)"; fail=1; }
in_b "$KCPX" down "$IF_B" | grep -q "kcpx is down on $IF_B" ||
	{ echo "FAIL: kcpx down $IF_B did not remove the --tcp counter pins"; fail=1; }
[ ! -e "/sys/fs/bpf/kcpx/$IF_B" ] && [ ! -e "/sys/fs/bpf/kcpx/$IF_A" ] ||
	{ echo "FAIL: pins left under /sys/fs/bpf/kcpx"; fail=1; }
[ "$(tables "$NS_A")" = 0 ] && [ "$(tables "$NS_B")" = 0 ] ||
	{ echo "FAIL: kcpx_tcp tables left after kcpx down"; fail=1; }
no_progs "$NS_A" "$IF_A" && no_progs "$NS_B" "$IF_B" ||
	{ echo "FAIL: programs left after kill -9"; fail=1; }

echo "no TCP window scaling at A: both ends say that a window-tracking firewall may drop"
! grep -q "no TCP window scaling" "$work/client1.log" "$work/server1.log" ||
	{ echo "FAIL: the window-scaling warning with window scaling on"; fail=1; }
in_ns "$NS_A" sysctl -qw net.ipv4.tcp_window_scaling=0
# shellcheck disable=SC2086
in_b "$KCPX" server --tcp -l :4020 -t 127.0.0.1:9001 $FLAGS -v 1 --quiet \
	--log "$work/server-nows.log" & track_pid $!
wait_tcp_port "$NS_B" 4020
# shellcheck disable=SC2086
in_a "$KCPX" client --tcp -l 127.0.0.1:8392 -r "$IP_B:4020" $FLAGS -v 1 --quiet \
	--log "$work/client-nows.log" & track_pid $!
wait_tcp_port "$NS_A" 8392
# the client's first stream opens its session, whose port makes the handshake
in_a timeout 60 python3 "$TCPIO" send 127.0.0.1 8392 1000 9 >/dev/null || true
wait_log "$work/client-nows.log" "flow .* has no TCP window scaling" || fail=1
wait_log "$work/server-nows.log" "flow .* has no TCP window scaling" || fail=1
pkill -TERM -f "$KCPX (client|server) --tcp -l .*nows.log" || true
in_ns "$NS_A" sysctl -qw net.ipv4.tcp_window_scaling=1

[ "$fail" -eq 0 ] || tail_logs
exit $fail
