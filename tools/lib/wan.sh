#!/usr/bin/env bash
# Emulated WAN links for tests and benchmarks. Source it, then:
#   wan_up LANE                 make lane LANE's three namespaces and two veth pairs
#   wan_linkem LANE [ARGS...]   (re)start linkem on LANE with linkem ARGS (--both SPEC ...)
#   wan_stats LANE              print linkem's current counters, one line per direction
#   wan_linkem_stop LANE        stop linkem (SIGTERM); its exit counters stay in the log
#   in_ns NS CMD...             (from tests/lib/netns.sh) run CMD in a namespace
# Names and addresses of lane L: $(wan_ns L a|m|b), $(wan_ip L a|b), $(wan_if L a|b).
#
#   [ ns a ]                      [ ns m ]                       [ ns b ]
#   ${T}${L}a 10.N.L.1 ==veth== ${T}${L}ma  linkem  ${T}${L}mb ==veth== ${T}${L}b 10.N.L.2
#
# T defaults to lkm<PID>, N is derived from the PID: several runs may go side by side.
# Everything made here (namespaces, linkem, whatever runs inside) is removed by the EXIT
# trap of tests/lib/netns.sh, also on failure or Ctrl-C.
_wan_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WAN_TAG=${WAN_TAG:-lkm$$}
NETNS_TAG=${NETNS_TAG:-$WAN_TAG}
# shellcheck source=../../tests/lib/netns.sh
. "$_wan_root/tests/lib/netns.sh"
WAN_NET=${WAN_NET:-$((($$ * 7 % 200) + 30))}
WAN_LINKEM=${WAN_LINKEM:-$_wan_root/${OUT:-build}/tools/linkem}
WAN_LOGDIR=${WAN_LOGDIR:-}
declare -A _wan_lkpid=()

wan_ns() { echo "${WAN_TAG}${1}${2}"; }
wan_if() { echo "${WAN_TAG}${1}${2}"; }
wan_ip() { if [ "$2" = a ]; then echo "10.$WAN_NET.$1.1"; else echo "10.$WAN_NET.$1.2"; fi; }

_wan_logdir() {
	if [ -z "$WAN_LOGDIR" ]; then
		WAN_LOGDIR=$(mktemp -d /tmp/kcpx-wan.XXXXXX)
		on_cleanup "rm -rf '$WAN_LOGDIR'"
	fi
}

# Quiet host: no IPv6 chatter on the link, big TCP buffers for long fat pipes.
_wan_host_sysctls() {
	in_ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	in_ns "$1" sysctl -qw net.ipv4.tcp_rmem="4096 131072 33554432" \
		net.ipv4.tcp_wmem="4096 65536 33554432" 2>/dev/null || true
}

wan_up() {
	local l=$1
	local na nm nb ia ib ima imb
	na=$(wan_ns "$l" a)
	nm=$(wan_ns "$l" m)
	nb=$(wan_ns "$l" b)
	ia=$(wan_if "$l" a)
	ib=$(wan_if "$l" b)
	ima=$(wan_if "$l" ma)
	imb=$(wan_if "$l" mb)
	_wan_logdir
	netns_add "$na" && netns_add "$nm" && netns_add "$nb" || return 1
	ip link add "$ia" netns "$na" type veth peer name "$ima" netns "$nm" || return 1
	ip link add "$ib" netns "$nb" type veth peer name "$imb" netns "$nm" || return 1
	_wan_host_sysctls "$na"
	_wan_host_sysctls "$nb"
	in_ns "$nm" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip -n "$na" addr add "$(wan_ip "$l" a)/24" dev "$ia"
	ip -n "$nb" addr add "$(wan_ip "$l" b)/24" dev "$ib"
	for x in "$na $ia" "$nm $ima" "$nm $imb" "$nb $ib"; do
		# shellcheck disable=SC2086
		set -- $x
		ip -n "$1" link set "$2" up || return 1
	done
	# One wire packet per frame on the endpoints, so a loss is a packet's loss. Checksum
	# offload stays on: linkem carries its metadata in the vnet header.
	in_ns "$na" ethtool -K "$ia" tso off gso off gro off >/dev/null 2>&1
	in_ns "$nb" ethtool -K "$ib" tso off gso off gro off >/dev/null 2>&1
	# Static neighbours: ARP through a lossy link would only add noise to the first packets.
	local ma mb
	ma=$(ip -n "$na" -br link show "$ia" | awk '{print $3}')
	mb=$(ip -n "$nb" -br link show "$ib" | awk '{print $3}')
	ip -n "$na" neigh replace "$(wan_ip "$l" b)" lladdr "$mb" dev "$ia" nud permanent
	ip -n "$nb" neigh replace "$(wan_ip "$l" a)" lladdr "$ma" dev "$ib" nud permanent
}

wan_linkem_stop() {
	local l=$1 pid=${_wan_lkpid[$1]:-} i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	_wan_lkpid[$l]=
}

wan_log() { echo "$WAN_LOGDIR/linkem-$1.log"; }

# wan_linkem LANE [linkem args]: restart linkem on LANE; fails if it is not ready in 3 s.
wan_linkem() {
	local l=$1 log i
	shift
	wan_linkem_stop "$l"
	log=$(wan_log "$l")
	# the redirection below happens in the child, later: never read the old run's "ready"
	rm -f "$log"
	# nsenter, not the in_ns function: $! must be linkem itself, not a subshell
	nsenter --net=/run/netns/"$(wan_ns "$l" m)" "$WAN_LINKEM" "$@" "$(wan_if "$l" ma)" \
		"$(wan_if "$l" mb)" >"$log" 2>&1 &
	_wan_lkpid[$l]=$!
	track_pid $!
	for ((i = 0; i < 60; i++)); do
		grep -q 'linkem: ready' "$log" 2>/dev/null && return 0
		kill -0 "${_wan_lkpid[$l]}" 2>/dev/null || break
		sleep 0.05
	done
	echo "wan: linkem on lane $l did not start:" >&2
	cat "$log" >&2
	return 1
}

# wan_stats LANE: ask linkem for its counters (SIGUSR1) and print the two fresh lines.
wan_stats() {
	local l=$1 log n i pid=${_wan_lkpid[$1]:-}
	log=$(wan_log "$l")
	[ -n "$pid" ] || return 1
	n=$(grep -c 'linkem: stats' "$log")
	kill -USR1 "$pid" || return 1
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c 'linkem: stats' "$log")" -ge $((n + 2)) ] && break
		sleep 0.01
	done
	grep 'linkem: stats' "$log" | tail -n 2
}

# wan_stat_field "STATS LINES" DIR FIELD: one counter out of wan_stats' output
wan_stat_field() {
	echo "$1" | awk -v d="$2" -v f="$3" '$3 == d { for (i = 4; i <= NF; i++) {
		split($i, kv, "="); if (kv[1] == f) print kv[2] } }'
}
