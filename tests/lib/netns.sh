#!/usr/bin/env bash
# Shared namespace helpers for kcpx's shell tests. Source it, then:
#   netns_pair          # two namespaces $NS_A/$NS_B, veth $IF_A/$IF_B, $IP_A/$IP_B
#   in_a CMD... / in_b CMD...  (nsenter, so /sys/fs/bpf stays the host's)
# Everything made here is removed by netns_cleanup, which runs on EXIT (also on failure).
#
#   [ $NS_A ]  $IF_A 10.$N.0.1/24 ---- veth ---- $IF_B 10.$N.0.2/24  [ $NS_B ]
#
# Names carry the caller's PID so tests may run side by side.
set -u
# The tree's top, and the binaries the tests drive (KCPX may come from the caller).
NETNS_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KCPX=${KCPX:-$NETNS_TOP/build/kcpx}
TCPIO=${TCPIO:-$NETNS_TOP/tests/lib/tcpio.py}
NETNS_TAG=${NETNS_TAG:-kx$$}
NS_A=${NETNS_TAG}a
NS_B=${NETNS_TAG}b
IF_A=${NETNS_TAG}va
IF_B=${NETNS_TAG}vb
_netns_n=$(( ($$ % 200) + 20 ))
IP_A=10.$_netns_n.0.1
IP_B=10.$_netns_n.0.2
NETNS_QUEUES=${NETNS_QUEUES:-2}
_netns_made=()
_netns_pids=()
_netns_cleanups=()

netns_cleanup() {
	local p c ns
	local left i
	for c in "${_netns_cleanups[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
	for p in "${_netns_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	# Ask whatever still runs inside our namespaces to stop (daemons then remove their
	# own sockets and pins), wait up to 2 s, then kill what is left.
	for ns in "${_netns_made[@]}"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null || true
	done
	for ((i = 0; i < 20; i++)); do
		left=""
		for ns in "${_netns_made[@]}"; do left+=$(ip netns pids "$ns" 2>/dev/null); done
		for p in "${_netns_pids[@]}"; do kill -0 "$p" 2>/dev/null && left+=" $p"; done
		[ -z "${left// /}" ] && break
		sleep 0.1
	done
	for p in "${_netns_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for ns in "${_netns_made[@]}"; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
	done
	_netns_made=()
	_netns_pids=()
	_netns_cleanups=()
}
trap netns_cleanup EXIT
trap 'exit 130' INT TERM

# on_cleanup 'shell command': run at cleanup, before namespaces go
on_cleanup() { _netns_cleanups+=("$1"); }
# track_pid PID: killed at cleanup
track_pid() { _netns_pids+=("$1"); }

netns_add() {
	# Listed first: a signal during `ip netns add` runs the trap only after it returns,
	# and the namespace must then already be on the cleanup list.
	_netns_made+=("$1")
	ip netns add "$1" || return 1
	ip -n "$1" link set lo up
}

in_ns() { local ns=$1; shift; nsenter --net=/run/netns/"$ns" "$@"; }
in_a() { in_ns "$NS_A" "$@"; }
in_b() { in_ns "$NS_B" "$@"; }

# stop_up WHO PID NS IFACE LOG: SIGTERM a `kcpx up` daemon (a child of this shell) and check
# that it exits 0 within 20 s, leaving no XDP program on IFACE, no pins, and no syscall
# refused by seccomp in LOG. Prints a FAIL line for each miss; returns 1 on any.
stop_up() {
	local who=$1 pid=$2 ns=$3 ifc=$4 log=$5 rc=0 st=0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		echo "FAIL: the $who still runs 20 s after SIGTERM"
		rc=1
	else
		wait "$pid" || st=$?
		[ "$st" -eq 0 ] || { echo "FAIL: the $who exited with $st"; rc=1; }
	fi
	if in_ns "$ns" ip -d link show "$ifc" | grep -q "prog/xdp"; then
		echo "FAIL: an XDP program is left on $ifc"
		rc=1
	fi
	[ ! -e "/sys/fs/bpf/kcpx/$ifc" ] || { echo "FAIL: pins left in /sys/fs/bpf/kcpx/$ifc"; rc=1; }
	! grep -q "syscalls refused" "$log" ||
		{ echo "FAIL: $(grep -m1 "syscalls refused" "$log")"; rc=1; }
	return $rc
}

netns_pair() {
	netns_add "$NS_A"
	netns_add "$NS_B"
	ip link add "$IF_A" numrxqueues "$NETNS_QUEUES" numtxqueues "$NETNS_QUEUES" type veth \
		peer name "$IF_B" numrxqueues "$NETNS_QUEUES" numtxqueues "$NETNS_QUEUES"
	ip link set "$IF_A" netns "$NS_A"
	ip link set "$IF_B" netns "$NS_B"
	ip -n "$NS_A" addr add "$IP_A/24" dev "$IF_A"
	ip -n "$NS_B" addr add "$IP_B/24" dev "$IF_B"
	ip -n "$NS_A" link set "$IF_A" up
	ip -n "$NS_B" link set "$IF_B" up
}

# netns_bridge NS_M W:IFN:IFM:IP...: bridge br0 in namespace NS_M (made here) and, for each
# W, a 2-queue veth from namespace $NS_W (IFN, address IP/24) to a port IFM of br0
netns_bridge() {
	local m=$1 x w ifn ifm ip ns
	shift
	netns_add "$m"
	ip -n "$m" link add br0 type bridge
	ip -n "$m" link set br0 up
	for x in "$@"; do
		IFS=: read -r w ifn ifm ip <<<"$x"
		ns=NS_$w
		ip link add "$ifn" numrxqueues 2 numtxqueues 2 type veth peer name "$ifm" \
			numrxqueues 2 numtxqueues 2
		ip link set "$ifn" netns "${!ns}"
		ip link set "$ifm" netns "$m"
		ip -n "${!ns}" addr add "$ip/24" dev "$ifn"
		ip -n "${!ns}" link set "$ifn" up
		ip -n "$m" link set "$ifm" master br0
		ip -n "$m" link set "$ifm" up
	done
}

# netns_routed NS_R IF_RA IP_RA IF_RB IP_RB [QUEUES]: $NS_A and $NS_B (made here) on
# either side of a router namespace NS_R (made here, IPv4 forwarding on), each by a veth
# of QUEUES queues (the kernel's default unless told); $NS_A and $NS_B route by default
# through it.
#
#   [ $NS_A ] $IF_A $IP_A/24 ---- IF_RA IP_RA/24 [ NS_R ] IF_RB IP_RB/24 ---- $IF_B $IP_B/24 [ $NS_B ]
netns_routed() {
	local r=$1 ra=$2 ipra=$3 rb=$4 iprb=$5 q=() l
	[ -n "${6:-}" ] && q=(numrxqueues "$6" numtxqueues "$6")
	netns_add "$NS_A"
	netns_add "$r"
	netns_add "$NS_B"
	ip link add "$IF_A" "${q[@]}" type veth peer name "$ra" "${q[@]}"
	ip link add "$IF_B" "${q[@]}" type veth peer name "$rb" "${q[@]}"
	ip link set "$IF_A" netns "$NS_A"
	ip link set "$ra" netns "$r"
	ip link set "$rb" netns "$r"
	ip link set "$IF_B" netns "$NS_B"
	ip -n "$NS_A" addr add "$IP_A/24" dev "$IF_A"
	ip -n "$r" addr add "$ipra/24" dev "$ra"
	ip -n "$r" addr add "$iprb/24" dev "$rb"
	ip -n "$NS_B" addr add "$IP_B/24" dev "$IF_B"
	for l in "$NS_A $IF_A" "$r $ra" "$r $rb" "$NS_B $IF_B"; do
		ip -n "${l% *}" link set "${l#* }" up
	done
	ip -n "$NS_A" route add default via "$ipra"
	ip -n "$NS_B" route add default via "$iprb"
	in_ns "$r" sysctl -qw net.ipv4.ip_forward=1
}

# xps_queue NS IFACE [Q]: IFACE (of namespace NS, 2 TX queues) sends everything on TX
# queue Q, every CPU's; a veth hands it to its peer's RX queue Q. No Q: back to the flow
# hash. Only what has no socket to pin a queue follows it (forwarded datagrams): a
# connected socket keeps the queue it was given first.
xps_queue() {
	local ns=$1 ifc=$2 m0=0 m1=0 all
	all=$(python3 -c 'import sys; n = int(sys.argv[1]); h = "%x" % ((1 << n) - 1)
h = h.zfill(-(-len(h) // 8) * 8); print(",".join(h[i:i + 8] for i in range(0, len(h), 8)))' \
		"$(nproc --all)")
	[ "${3:-}" = 0 ] && m0=$all
	[ "${3:-}" = 1 ] && m1=$all
	# ip netns exec: a /sys of the namespace's own (nsenter keeps the host's)
	ip netns exec "$ns" sh -c "echo $m0 >/sys/class/net/$ifc/queues/tx-0/xps_cpus &&
		echo $m1 >/sys/class/net/$ifc/queues/tx-1/xps_cpus"
}

bpffs_mount() { mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf; }

# wait_tcp_port / wait_udp_port NS PORT [SECONDS]: until something listens on PORT in NS
# (30 s unless told: an upper bound for a slow, busy machine, not a delay)
_wait_port() {
	local proto=$1 ns=$2 port=$3 t=${4:-30} i
	for ((i = 0; i < t * 10; i++)); do
		in_ns "$ns" ss -Hl"$proto"n "sport = :$port" 2>/dev/null | grep -q . && return 0
		sleep 0.1
	done
	echo "nothing listens on $([ "$proto" = t ] && echo tcp || echo udp) port $port in $ns after ${t}s" >&2
	return 1
}
wait_tcp_port() { _wait_port t "$@"; }
wait_udp_port() { _wait_port u "$@"; }

# wait_log FILE PATTERN [SECONDS]: until a line of FILE matches PATTERN (grep -E), 30 s
# unless told
wait_log() {
	local f=$1 pat=$2 t=${3:-30} i
	for ((i = 0; i < t * 10; i++)); do
		grep -qE -- "$pat" "$f" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "no line matching '$pat' in $f after ${t}s" >&2
	return 1
}

# wait_line FILE REGEX: wait_log for up to 20 s; on a miss, a FAIL line and the whole file
wait_line() {
	wait_log "$1" "$2" 20 2>/dev/null && return 0
	echo "FAIL: no '$2' in $1:"
	cat "$1" 2>/dev/null
	return 1
}

# wait_file FILE PID: until FILE exists (a helper's mark that it has started its work), or
# process PID has ended; 30 s at most. 1 when FILE did not come.
wait_file() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ -e "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	[ -e "$1" ]
}

# snmp_fresh FILE: until FILE, a --snmplog written each second (--snmpperiod 1), has two
# rows more than at the call. The daemon writes a row and then publishes its counters
# (kcpx stats) on one timer, in its own time: after two new rows, the newest row and the
# published counters were both sampled after the call. Bounded at 30 s (a busy machine
# delays the rows); 1 when they did not come.
snmp_fresh() {
	local f=$1 rows i
	rows=$(wc -l 2>/dev/null <"$f" || echo 0)
	for ((i = 0; i < 300; i++)); do
		[ "$(wc -l 2>/dev/null <"$f" || echo 0)" -ge $((rows + 2)) ] && return 0
		sleep 0.1
	done
	echo "no new rows in $f after 30s" >&2
	return 1
}

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: needs root (network namespaces)" >&2
		exit 4
	fi
}

# work_dir NAME: need_root, then $work, a fresh directory /tmp/kcpx-NAME.XXXXXX that the
# cleanup removes (also on failure)
work_dir() {
	need_root
	work=$(mktemp -d "/tmp/kcpx-$1.XXXXXX") || exit 1
	on_cleanup "rm -rf '$work'"
}

# kcpx_status ARGS...: `kcpx status ARGS`, asked again (10 times at most) when the daemon
# does not answer within the 2 s kcpx status waits, as one busy on a loaded machine may not.
# Only the answer that came is printed (a failed try's "no answer" line or JSON error
# element is not).
kcpx_status() {
	local i out
	for ((i = 0; i < 9; i++)); do
		out=$("$KCPX" status "$@" 2>/dev/null) && { printf '%s\n' "$out"; return 0; }
		sleep 0.2
	done
	"$KCPX" status "$@"
}

# thread_sessions PID K, thread_handed PID K: from thread (engine) K's line of
# `kcpx status PID`, the sessions it holds and the datagrams it handed to another thread
# (--threads, or one engine per RX queue under `kcpx up`)
thread_sessions() {
	kcpx_status "$1" | sed -n "s/^  thread $2: \([0-9]*\) sessions.*/\1/p"
}
thread_handed() {
	kcpx_status "$1" | sed -n "s/^  thread $2: .*handed to another thread \([0-9]*\),.*/\1/p"
}

# check_rx_drops SERVER_PID CLIENT_PID MESSAGE: the receive drops a test provoked at the
# server are counted and reported, from `kcpx status --json` of both ends (kept in
# $work/server.json and client.json): 0 < the server's sessions' rx_drops <= its
# rx_dropped, and 0 < the client's sessions' peer_drops <= those rx_drops. Prints the
# figures, and "FAIL: MESSAGE" when they do not hold; returns 0 or 1.
check_rx_drops() {
	kcpx_status --json "$1" >"$work/server.json" 2>&1 || true
	kcpx_status --json "$2" >"$work/client.json" 2>&1 || true
	python3 - "$work/server.json" "$work/client.json" "$3" <<'EOF'
import json, sys
srv = json.load(open(sys.argv[1]))[0]
cli = json.load(open(sys.argv[2]))[0]
rx = srv["rx_dropped"]
srx = sum(s["cc"]["rx_drops"] for s in srv["sessions"])
peer = sum(s["cc"]["peer_drops"] for s in cli["sessions"])
print(f"  server: rx_dropped {rx}, its session's rx_drops {srx}; client: peer_drops {peer}")
ok = 0 < srx <= rx and 0 < peer <= srx
if not ok:
    print(f"FAIL: {sys.argv[3]}")
sys.exit(0 if ok else 1)
EOF
}

# tail_logs [N]: the last N lines (20 unless told) of every $work/*.log, each under its name
tail_logs() {
	local f
	for f in "$work"/*.log; do echo "== $f"; tail -"${1:-20}" "$f"; done
}
