#!/usr/bin/env bash
# `kcpx up` on both ends of a veth, in native and in skb XDP mode: a transfer through the
# tunnel over AF_XDP with sha256 equal at both ends, the pinned maps (SNMP included) seen
# by bpftool, ping and a direct TCP transfer unaffected while up, `up` refusing while up,
# clean detach on SIGTERM, `kcpx down` after a crash, the native protocol's XDP checks
# (--proto auto) passing the tunnel's traffic and dropping none of it. Then the same
# transfer over UDP sockets (`kcpx client|server`), and goodput and daemon CPU per GB for
# each.
#
#   [ $NS_A ]                                               [ $NS_B ]
#   tcpio send -> kcpx up $IF_A client :8388                kcpx up $IF_B server :4000
#                 XDP + AF_XDP ====== veth (2 queues) ======= XDP + AF_XDP -> tcpio sink :9001
#   tcpio send (direct TCP) --------------------------------------------------> tcpio sink :9100
#
# SIZE (bytes, default 64 MiB) sets the transfer.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir xdptun
SIZE=${SIZE:-$((64 << 20))}
FLAGS="--crypt none --nocomp --ds 0 --ps 0 --mode fast3 --sndwnd 1024 --rcvwnd 1024"
[ -x "$KCPX" ] || { echo "missing $KCPX: run make first" >&2; exit 1; }

fail() {
	echo "FAIL: $*" >&2
	for f in "$work"/*.log; do [ -f "$f" ] && { echo "== $f"; tail -15 "$f"; } >&2; done
	exit 1
}

bpffs_mount
NETNS_QUEUES=2 netns_pair
on_cleanup "in_a $KCPX down $IF_A; in_b $KCPX down $IF_B; rmdir /sys/fs/bpf/kcpx"

cpu_ticks() { # utime + stime of a pid, in clock ticks
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

SRV= CLI=
SINKS=()
start() { # how: "up MODE" or "udp"
	local tag=$1 mode=${2:-}
	local s_cmd=(server) c_cmd=(client)
	if [ "$tag" = up ]; then
		s_cmd=(up "$IF_B" --xdp-mode "$mode" server)
		c_cmd=(up "$IF_A" --xdp-mode "$mode" client)
	fi
	rm -rf "$work/sink"
	mkdir -p "$work/sink"
	nsenter --net=/run/netns/"$NS_B" python3 "$TCPIO" sink 9001 "$work/sink" &
	SINKS+=($!)
	track_pid $!
	# nsenter execs kcpx: $! is the daemon itself
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_B" "$KCPX" "${s_cmd[@]}" -l :4000 -t 127.0.0.1:9001 \
		$FLAGS --log "$work/server-$tag$mode.log" &
	SRV=$!
	track_pid $SRV
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_A" "$KCPX" "${c_cmd[@]}" -l 127.0.0.1:8388 \
		-r "$IP_B:4000" $FLAGS --log "$work/client-$tag$mode.log" &
	CLI=$!
	track_pid $CLI
	wait_udp_port "$NS_B" 4000
	wait_tcp_port "$NS_A" 8388
	wait_tcp_port "$NS_B" 9001
}

declare -A goodput cpu
declare -a want
transfer() { # KEY: SIZE bytes through the tunnel, sha256 compared, rate and CPU noted
	local key=$1 t0 t1 c0 c1 sent got
	c0=$(($(cpu_ticks $SRV) + $(cpu_ticks $CLI)))
	t0=$(date +%s%N)
	sent=$(in_a timeout 300 python3 "$TCPIO" send 127.0.0.1 8388 "$SIZE" 7) ||
		fail "$key: send failed"
	for _ in $(seq 1 300); do [ -e "$work/sink/0.sha" ] && break; sleep 0.05; done
	t1=$(date +%s%N)
	c1=$(($(cpu_ticks $SRV) + $(cpu_ticks $CLI)))
	got=$(cut -d' ' -f1 "$work/sink/0.sha" 2>/dev/null || echo none)
	[ "$sent" = "$got" ] || fail "$key: sha256 sent $sent, received $got"
	goodput[$key]=$(awk -v b="$SIZE" -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", b * 8 / ns * 1000 }')
	cpu[$key]=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v b="$SIZE" \
		'BEGIN { printf "%.2f", t / hz / (b / 1e9) }')
	echo "  $key: $SIZE bytes intact, ${goodput[$key]} Mbit/s, ${cpu[$key]} daemon CPU s/GB"
}

stop() {
	kill -TERM $CLI $SRV
	wait $CLI || fail "client did not exit cleanly"
	wait $SRV || fail "server did not exit cleanly"
}

no_trace_of_kcpx() { # NS IFACE
	ip -n "$1" link show "$2" | grep -q "prog/xdp" && fail "XDP left on $2"
	in_ns "$1" tc filter show dev "$2" egress | grep -q kcpx && fail "TC left on $2"
	in_ns "$1" tc qdisc show dev "$2" | grep -q clsact && fail "clsact left on $2"
	[ -e "/sys/fs/bpf/kcpx/$2" ] && fail "pins left for $2"
	return 0
}

# pinned_sum IFACE MAP FIELD: FIELD summed over the pinned MAP's entries (0 if none)
pinned_sum() {
	bpftool map dump pinned "/sys/fs/bpf/kcpx/$1/$2" 2>/dev/null |
		awk -F'[:,]' -v f="\"$3\"" '$0 ~ f { s += $2 } END { print s + 0 }'
}

for mode in native skb; do
	echo "== kcpx up, XDP $mode mode"
	start up $mode
	grep -q "XDP in $mode mode" "$work/server-up$mode.log" || fail "server not in $mode mode"
	grep -q "XDP in $mode mode" "$work/client-up$mode.log" || fail "client not in $mode mode"
	grep -q "(af_xdp)" "$work/server-up$mode.log" || fail "server is not on AF_XDP"
	transfer "xdp-$mode"

	# both ends steered the tunnel into AF_XDP, and the engine's counters are pinned
	# the engines publish SNMP and their AF_XDP counters every second, in their own time:
	# wait (bounded) for a publication that has the transfer in it
	for ifc in "$IF_A" "$IF_B"; do
		for _ in $(seq 1 200); do
			[ "$(pinned_sum "$ifc" kcpx_snmp InPkts)" -gt 100 ] &&
				[ "$(pinned_sum "$ifc" kcpx_xsk_stats tx_packets)" -gt 100 ] && break
			sleep 0.1
		done
	done
	for ifc in "$IF_A" "$IF_B"; do
		pin=/sys/fs/bpf/kcpx/$ifc
		steered=$(bpftool map dump pinned "$pin/kcpx_xdp_stats" |
			awk -F'[:,]' '/"steered"/ { s += $2 } END { print s + 0 }')
		[ "$steered" -gt 100 ] || fail "$ifc: steered=$steered"
		inpkts=$(bpftool map dump pinned "$pin/kcpx_snmp" |
			awk -F'[:,]' '/"InPkts"/ { s += $2 } END { print s + 0 }')
		[ "$inpkts" -gt 100 ] || fail "$ifc: kcpx_snmp InPkts=$inpkts"
		# every frame the other end built (headers, checksums) was accepted
		bad=$(bpftool map dump pinned "$pin/kcpx_xsk_stats" |
			awk -F'[:,]' '/"rx_bad"/ { s += $2 } END { print s + 0 }')
		[ "$bad" -eq 0 ] || fail "$ifc: AF_XDP rejected $bad frames"
		# and what it sent went out on the TX rings, not through the kernel
		for f in tx_packets tx_kernel neigh_lookups; do
			eval "$f=\$(bpftool map dump pinned \"$pin/kcpx_xsk_stats\" |
				awk -F'[:,]' '/\"$f\"/ { s += \$2 } END { print s + 0 }')"
		done
		echo "  $ifc: AF_XDP tx $tx_packets, via kernel $tx_kernel, neighbour lookups $neigh_lookups"
		[ "$tx_packets" -gt 100 ] && [ "$tx_packets" -gt $((tx_kernel * 4)) ] ||
			fail "$ifc: AF_XDP TX barely used"
		# --proto auto (the default): XDP ran the native checks and dropped nothing real
		nat=$(bpftool map dump pinned "$pin/kcpx_nat_stats" | awk -F'[:,]' \
			'/"pass"|"pass_kcptun"/ { p += $2 } /"drop_/ { d += $2 }
			 END { print p + 0, d + 0 }')
		read -r nat_pass nat_drop <<<"$nat"
		echo "  $ifc: native checks passed $nat_pass, dropped $nat_drop"
		[ "$nat_pass" -gt 100 ] && [ "$nat_drop" -eq 0 ] ||
			fail "$ifc: native checks passed $nat_pass, dropped $nat_drop"
	done
	"$KCPX" stats "$IF_B" | grep -q "tx_packets" || fail "kcpx stats"
	# --json: two samples a line each, the second with rates; same counters as the text
	"$KCPX" stats "$IF_B" --json -i 0.2 -n 2 | python3 -c 'import json,sys
l = [json.loads(x) for x in sys.stdin]
assert len(l) == 2 and "per_second" not in l[0] and "per_second" in l[1], l
assert any("tx_packets" in m for m in l[0]["counters"].values()), l[0]' ||
		fail "kcpx stats --json"

	# the rest of the traffic is the kernel's as before
	in_a ping -c 3 -i 0.2 -W 2 -q "$IP_B" >/dev/null || fail "ping broken while up"
	mkdir -p "$work/direct"
	rm -f "$work/direct/0.sha"
	nsenter --net=/run/netns/"$NS_B" python3 "$TCPIO" sink 9100 "$work/direct" &
	SINKS+=($!)
	track_pid $!
	wait_tcp_port "$NS_B" 9100
	sent=$(in_a timeout 60 python3 "$TCPIO" send "$IP_B" 9100 $((4 << 20)) 3)
	for _ in $(seq 1 100); do [ -e "$work/direct/0.sha" ] && break; sleep 0.05; done
	[ "$sent" = "$(cut -d' ' -f1 "$work/direct/0.sha" 2>/dev/null)" ] ||
		fail "direct TCP broken while up"

	# a second `up` on the same interface refuses while the first lives
	if in_b "$KCPX" up "$IF_B" server -l :4001 -t 127.0.0.1:9001 $FLAGS \
		2>"$work/again.log"; then
		fail "second kcpx up on $IF_B started"
	fi
	grep -q "already up" "$work/again.log" || fail "no clear refusal: $(cat "$work/again.log")"

	if [ $mode = native ]; then
		stop
		no_trace_of_kcpx "$NS_A" "$IF_A"
		no_trace_of_kcpx "$NS_B" "$IF_B"
	else
		# a crash: programs and counters stay, `kcpx down` removes them
		kill -KILL $CLI $SRV
		wait $CLI $SRV 2>/dev/null || true
		[ -e "/sys/fs/bpf/kcpx/$IF_B/kcpx_snmp" ] || fail "pins gone with the process"
		in_a "$KCPX" down "$IF_A" >/dev/null
		in_b "$KCPX" down "$IF_B" >/dev/null
		no_trace_of_kcpx "$NS_A" "$IF_A"
		no_trace_of_kcpx "$NS_B" "$IF_B"
	fi
	kill "${SINKS[@]}" 2>/dev/null || true
	wait "${SINKS[@]}" 2>/dev/null || true
	SINKS=()
done

echo "== kcpx up over IPv6, -c JSON, --conn 3 (a port per session on one AF_XDP core), aes"
ip -n "$NS_A" addr add "fd00:$_netns_n::1/64" dev "$IF_A" nodad
ip -n "$NS_B" addr add "fd00:$_netns_n::2/64" dev "$IF_B" nodad
cat >"$work/s.json" <<JSON
{"listen": "[::]:4000", "target": "127.0.0.1:9001", "crypt": "aes", "key": "k6",
 "mode": "fast2", "log": "$work/server-v6.log"}
JSON
cat >"$work/c.json" <<JSON
{"localaddr": "127.0.0.1:8388", "remoteaddr": "[fd00:$_netns_n::2]:4000", "crypt": "aes",
 "key": "k6", "mode": "fast2", "conn": 3, "log": "$work/client-v6.log"}
JSON
rm -rf "$work/sink"
mkdir -p "$work/sink"
nsenter --net=/run/netns/"$NS_B" python3 "$TCPIO" sink 9001 "$work/sink" &
SINKS+=($!)
track_pid $!
nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" -c "$work/s.json" &
SRV=$!
track_pid $SRV
nsenter --net=/run/netns/"$NS_A" "$KCPX" up "$IF_A" --queues 1 -c "$work/c.json" &
CLI=$!
track_pid $CLI
wait_udp_port "$NS_B" 4000
wait_tcp_port "$NS_A" 8388
wait_tcp_port "$NS_B" 9001
for i in 0 1 2 3 4 5; do
	want[$i]=$(in_a timeout 60 python3 "$TCPIO" send 127.0.0.1 8388 $((2 << 20)) $((10 + i))) ||
		fail "IPv6 stream $i"
done
for _ in $(seq 1 100); do [ -e "$work/sink/5.sha" ] && break; sleep 0.05; done
for i in 0 1 2 3 4 5; do
	grep -q "^${want[$i]} " "$work/sink/"*.sha || fail "IPv6 stream $i: sha256 not received"
done
sessions=$(grep -c "session .* opened" "$work/client-v6.log")
[ "$sessions" -eq 3 ] || fail "client opened $sessions sessions, want 3"
echo "  6 streams intact over IPv6 on $sessions sessions"
stop
kill "${SINKS[@]}" 2>/dev/null || true
wait "${SINKS[@]}" 2>/dev/null || true
SINKS=()
no_trace_of_kcpx "$NS_A" "$IF_A"
no_trace_of_kcpx "$NS_B" "$IF_B"

echo "== kcpx client/server over UDP sockets"
start udp
transfer udp
stop

echo "summary, $SIZE bytes client -> server, fast3, no crypt/FEC:"
for k in xdp-native xdp-skb udp; do
	printf '  %-11s %6s Mbit/s  %6s daemon CPU s/GB\n' "$k" "${goodput[$k]}" "${cpu[$k]}"
done
echo "PASS"
