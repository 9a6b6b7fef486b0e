#!/usr/bin/env bash
# Interop cases: kcpx against stock kcptun (Debian's kcptun-client / kcptun-server,
# 20210922) in two namespaces over a lossy link. Source it, then:
#
#   interop_setup                  namespaces, veth, work dir (all removed on EXIT)
#   interop_case DIR CRYPT COMP SMUX FEC MODE STREAMS LOSS [EXTRA FLAGS...]
#   interop_table FILE|-          one interop_case per non-comment line of FILE
#   interop_summary                the results table; returns non-zero if a case failed
#
#   DIR      kx2kt: kcpx client -> kcptun-server    kt2kx: kcptun-client -> kcpx server
#            (kt2kt and kx2kx: the same case between like ends, as a reference)
#   CRYPT    a --crypt value            COMP  comp | nocomp       SMUX  1 | 2
#   FEC      DS/PS, e.g. 10/3 or 0/0    MODE  a --mode value      STREAMS  0 or N
#   LOSS     % of UDP datagrams dropped at each namespace's ingress (nftables)
#   EXTRA    more flags for both ends (e.g. --mtu 1200); c:FLAG for the client only,
#            s:FLAG for the server only (e.g. c:--conn c:3), k:FLAG for kcpx only
#
# One case runs three tunnels side by side, each with its own client/server pair and
# its own service in B, all with the same flags:
#
#   [ A ] mixio send  -> client :P1 ==udp :U1==> server -> tcpio sink    [ B ]
#         tcpio recv  <- client :P2 <=udp :U2=== server <- mixio source
#         tcpio multi <> client :P3 <=udp :U3==> server <> tcpio echo :S3  (STREAMS > 0)
#         $IP_A           (veth, LOSS% random drop on each ingress)        $IP_B
#
# Case k, tunnel i uses TCP port Pi = 8000+4k+i in A, UDP Ui = 4000+4k+i and service
# Si = 9000+4k+i in B: no port is reused within a run.
#
# Checks per case: IO_SIZE bytes (default 16 MiB) up and down with sha256 equal at both
# ends (mixio.py's partly compressible data, so snappy makes both chunk kinds); with
# STREAMS > 0, STREAMS concurrent echo streams moving IO_SIZE in total (tcpio multi),
# every byte compared; every daemon still alive at the end; from each end's kcp-go SNMP
# counters (SIGUSR1): no CRC (InCsumErrors) or FEC errors, FECRecovered > 0 at the bulk
# receiver when FEC is on and LOSS > 0, no parity shard seen anywhere when FEC is 0/0,
# the bulk sender's BytesSent under 80 % of IO_SIZE with compression, >= without,
# no KCPInErrors anywhere.
# Known exceptions, kcptun's own: with sm4, or with several sessions (client --conn N),
# kcptun corrupts some datagrams (races, see interop_case); those cases allow
# InCsumErrors below half of InPkts at each end. kcpx's --fecflush only acts between
# kcpx ends (native protocol), so no FECErrs are allowed anywhere.
set -u
_io_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NETNS_TAG=${NETNS_TAG:-kxio$$}
# shellcheck source-path=SCRIPTDIR source=../lib/netns.sh
. "$_io_top/tests/lib/netns.sh"
KCPX=${KCPX:-$_io_top/build/kcpx}
KCPTUN_CLIENT=${KCPTUN_CLIENT:-kcptun-client}
KCPTUN_SERVER=${KCPTUN_SERVER:-kcptun-server}
TCPIO=$_io_top/tests/lib/tcpio.py
MIXIO=$_io_top/tests/interop/mixio.py
IO_SIZE=${IO_SIZE:-$((16 << 20))}
IO_TMO=${IO_TMO:-120}
# INTEROP_KEEP=1 keeps the work dir (daemon logs) for a look afterwards
INTEROP_KEEP=${INTEROP_KEEP:-0}
# INTEROP_PCAP=1 captures the UDP traffic of every case in B (big: use with one case)
INTEROP_PCAP=${INTEROP_PCAP:-0}

_io_case=0
_io_loss=
_io_results=()
_io_failed=0

interop_setup() {
	need_root
	local b
	for b in "$KCPX" "$(command -v "$KCPTUN_CLIENT")" "$(command -v "$KCPTUN_SERVER")"; do
		if [ ! -x "$b" ]; then
			echo "interop: missing binary ($KCPX, $KCPTUN_CLIENT, $KCPTUN_SERVER): run make deps && make" >&2
			exit 1
		fi
	done
	IO_WORK=$(mktemp -d /tmp/kcpx-interop.XXXXXX)
	if [ "$INTEROP_KEEP" = 1 ]; then
		echo "interop: logs kept in $IO_WORK"
	else
		on_cleanup "rm -rf '$IO_WORK'"
	fi
	# A private copy of kcpx: the shared tree may relink build/kcpx during the run, and
	# every case should test the same binary. Retry while a link is half written.
	local i
	for ((i = 0; i < 20; i++)); do
		cp "$KCPX" "$IO_WORK/kcpx" 2>/dev/null && "$IO_WORK/kcpx" client --help >/dev/null 2>&1 && break
		sleep 0.5
	done
	if ! "$IO_WORK/kcpx" client --help >/dev/null 2>&1; then
		echo "interop: cannot run a copy of $KCPX" >&2
		exit 1
	fi
	echo "interop: kcpx $(sha256sum "$IO_WORK/kcpx" | cut -c1-12) from $KCPX ($(stat -c %y "$KCPX" | cut -d. -f1))"
	KCPX=$IO_WORK/kcpx
	netns_pair
	# no IPv6 router solicitations etc. on the lossy link
	in_a sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	in_b sysctl -qw net.ipv6.conf.all.disable_ipv6=1
}

# _io_spawn VAR NS LOG CMD...: start CMD in namespace NS, output to LOG, pid into VAR.
# nsenter execs CMD, so the pid is the daemon's own (signals reach it, not a shell).
_io_spawn() {
	local var=$1 ns=$2 log=$3
	shift 3
	nsenter --net=/run/netns/"$ns" "$@" >"$log" 2>&1 &
	printf -v "$var" %s $!
	track_pid $!
}

# _io_set_loss PCT: random drop of PCT% of UDP datagrams on both ingress sides, and of
# TCP segments carrying data (--tcp cases: a kcptun end sees TCP there; a kcpx end's
# XDP has turned them into UDP before this hook)
_io_set_loss() {
	local pct=$1 ns dev
	[ "$pct" = "$_io_loss" ] && return 0
	for ns in "$NS_A" "$NS_B"; do
		dev=$([ "$ns" = "$NS_A" ] && echo "$IF_A" || echo "$IF_B")
		in_ns "$ns" nft delete table netdev kxinterop 2>/dev/null || true
		[ "$pct" -gt 0 ] || continue
		in_ns "$ns" nft -f - <<-NFT || return 1
			table netdev kxinterop {
				chain in {
					type filter hook ingress device "$dev" priority 0;
					meta l4proto udp numgen random mod 100 < $pct counter drop
					tcp flags & (syn | rst | fin) == 0 meta length > 100 numgen random mod 100 < $pct counter drop
				}
			}
		NFT
	done
	_io_loss=$pct
}

# _io_dropped: datagrams dropped so far by the loss rules, both sides
_io_dropped() {
	local n=0 ns c
	for ns in "$NS_A" "$NS_B"; do
		for c in $(in_ns "$ns" nft list table netdev kxinterop 2>/dev/null |
			sed -n 's/.*counter packets \([0-9]*\).*/\1/p'); do
			n=$((n + c))
		done
	done
	echo $n
}

# _io_snmp PID LOG: SIGUSR1 the daemon, print the "KCP SNMP:&{...}" line it logs.
# kcptun (signal.go) and kcpx both answer SIGUSR1 with that line.
_io_snmp() {
	local pid=$1 log=$2 before i
	before=$(grep -c 'KCP SNMP:' "$log")
	kill -USR1 "$pid" 2>/dev/null || return 1
	for ((i = 0; i < 300; i++)); do # 15 s: the daemon logs it in its own time
		[ "$(grep -c 'KCP SNMP:' "$log")" -gt "$before" ] && break
		sleep 0.05
	done
	grep 'KCP SNMP:' "$log" | tail -n 1
}

# _io_field LINE NAME: a counter's value from a SNMP line, or -1 when absent
_io_field() {
	local v
	v=$(printf '%s\n' "$1" | grep -o "[{ ]$2:[0-9]*" | head -n 1 | cut -d: -f2)
	echo "${v:--1}"
}

# _io_wait OUT CMD...: run CMD with stdout to OUT, stderr to OUT.err, return its status.
# In the background plus wait, so that SIGTERM/SIGINT (run-all's timeout, Ctrl-C) reach
# the EXIT cleanup at once instead of after the transfer's own timeout.
_io_wait() {
	local out=$1 p
	shift
	"$@" >"$out" 2>"$out.err" &
	p=$!
	wait "$p"
}

_io_ms() { echo $(($(date +%s%N) / 1000000)); }

_io_stop() { # _io_stop PID...: SIGTERM, then SIGKILL after 2 s
	local p i alive
	kill -TERM "$@" 2>/dev/null || true
	for ((i = 0; i < 20; i++)); do
		alive=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && return 0
		sleep 0.1
	done
	kill -KILL "$@" 2>/dev/null || true
}

interop_case() {
	local dir=$1 crypt=$2 comp=$3 smux=$4 fec=$5 mode=$6 streams=$7 loss=$8
	shift 8
	local extra=("$@")
	local k=$((++_io_case))
	local ds=${fec%/*} ps=${fec#*/}
	local cw=$IO_WORK/case$k
	mkdir -p "$cw"
	local name="$dir $crypt $comp smux$smux fec$fec $mode streams=$streams loss=$loss${extra[*]:+ ${extra[*]}}"
	echo "== case $k: $name"

	local flags=(--crypt "$crypt" --key "interop-$k-$crypt" --mode "$mode" --smuxver "$smux"
		--ds "$ds" --ps "$ps")
	[ "$comp" = nocomp ] && flags+=(--nocomp)
	local cli srv
	case $dir in
	# --proto kcptun: a kcpx client's default (auto) would first probe for a native
	# server; stock kcptun counts those probes as CRC errors, which this matrix forbids.
	# test-kcpx-client.sh checks the auto fallback on its own.
	kx2kt) cli=("$KCPX" client --proto kcptun) srv=("$KCPTUN_SERVER") ;;
	kt2kx) cli=("$KCPTUN_CLIENT") srv=("$KCPX" server) ;;
	kt2kt) cli=("$KCPTUN_CLIENT") srv=("$KCPTUN_SERVER") ;;
	kx2kx) cli=("$KCPX" client) srv=("$KCPX" server) ;;
	*)
		echo "interop: unknown direction $dir" >&2
		return 1
		;;
	esac
	# EXTRA: c:FLAG goes to the client only, s:FLAG to the server only, k:FLAG to the
	# kcpx end(s) only, others to both
	local x cflags=() sflags=()
	for x in "${extra[@]}"; do
		case $x in
		c:*) cflags+=("${x#c:}") ;;
		s:*) sflags+=("${x#s:}") ;;
		k:*)
			[ "${cli[0]}" = "$KCPX" ] && cflags+=("${x#k:}")
			[ "${srv[0]}" = "$KCPX" ] && sflags+=("${x#k:}")
			;;
		*) cflags+=("$x") sflags+=("$x") ;;
		esac
	done

	local fail=() pids=() dpids=() ntun=2
	[ "$streams" -gt 0 ] && ntun=3
	_io_set_loss "$loss" || fail+=("nft")
	local drop0
	drop0=$(_io_dropped)

	# services in B, then one tunnel per service
	local svc i sp up dp cp
	local -A spid=() cpid=()
	_io_spawn svc "$NS_B" "$cw/sink.log" python3 "$TCPIO" sink $((9000 + k * 4 + 1)) "$cw"
	pids+=("$svc")
	_io_spawn svc "$NS_B" "$cw/source.log" python3 "$MIXIO" source $((9000 + k * 4 + 2)) "$IO_SIZE" $((k + 1000))
	pids+=("$svc")
	if [ "$streams" -gt 0 ]; then
		_io_spawn svc "$NS_B" "$cw/echo.log" python3 "$TCPIO" echo $((9000 + k * 4 + 3))
		pids+=("$svc")
	fi
	local pcap=
	if [ "$INTEROP_PCAP" = 1 ]; then
		_io_spawn pcap "$NS_B" "$cw/tcpdump.log" tcpdump -i "$IF_B" -s 200 -w "$cw/b.pcap" udp
		sleep 0.5
	fi
	for ((i = 1; i <= ntun; i++)); do
		sp=$((9000 + k * 4 + i))
		up=$((4000 + k * 4 + i))
		cp=$((8000 + k * 4 + i))
		_io_spawn dp "$NS_B" "$cw/server$i.log" "${srv[@]}" -l ":$up" -t "127.0.0.1:$sp" \
			"${flags[@]}" "${sflags[@]}"
		spid[$i]=$dp
		_io_spawn dp "$NS_A" "$cw/client$i.log" "${cli[@]}" -l "127.0.0.1:$cp" -r "$IP_B:$up" \
			"${flags[@]}" "${cflags[@]}"
		cpid[$i]=$dp
		dpids+=("${spid[$i]}" "${cpid[$i]}")
	done
	for ((i = 1; i <= ntun; i++)); do
		wait_tcp_port "$NS_B" $((9000 + k * 4 + i)) || fail+=("service$i")
		if [[ " ${sflags[*]} " == *" --tcp "* ]]; then
			wait_tcp_port "$NS_B" $((4000 + k * 4 + i)) || fail+=("server$i")
		else
			wait_udp_port "$NS_B" $((4000 + k * 4 + i)) || fail+=("server$i")
		fi
		wait_tcp_port "$NS_A" $((8000 + k * 4 + i)) || fail+=("client$i")
	done

	# upload A -> B: sha256 at the sender against the sink's
	local t0 t1 up_ms=- down_ms=- multi_ms=- sent got gotn want
	if [ ${#fail[@]} -eq 0 ]; then
		t0=$(_io_ms)
		_io_wait "$cw/send.out" in_a timeout "$IO_TMO" python3 "$MIXIO" send 127.0.0.1 $((8000 + k * 4 + 1)) "$IO_SIZE" "$k" || true
		sent=$(cat "$cw/send.out")
		for ((i = 0; i < 100; i++)); do
			[ -e "$cw/0.sha" ] && break
			sleep 0.1
		done
		t1=$(_io_ms)
		read -r got gotn <"$cw/0.sha" 2>/dev/null || { got=none gotn=0; }
		if [ -n "$sent" ] && [ "$sent" = "$got" ] && [ "$gotn" = "$IO_SIZE" ]; then
			up_ms=$((t1 - t0))
		else
			fail+=("upload(sent ${sent:-nothing}, got $got $gotn bytes)")
		fi

		# download B -> A: the source's data is a function of (size, seed)
		# (other data than the upload's, and nothing left over from it in got/gotn)
		want=$(python3 "$MIXIO" data "$IO_SIZE" $((k + 1000)))
		got='' gotn=''
		t0=$(_io_ms)
		_io_wait "$cw/recv.out" in_a timeout "$IO_TMO" python3 "$TCPIO" recv 127.0.0.1 $((8000 + k * 4 + 2)) || true
		read -r got gotn <"$cw/recv.out" || true
		t1=$(_io_ms)
		if [ "${got:-}" = "$want" ] && [ "${gotn:-}" = "$IO_SIZE" ]; then
			down_ms=$((t1 - t0))
		else
			fail+=("download(got ${got:-nothing} ${gotn:-0} bytes)")
		fi

		if [ "$streams" -gt 0 ]; then
			t0=$(_io_ms)
			if _io_wait "$cw/multi.log" in_a timeout "$IO_TMO" python3 "$TCPIO" multi 127.0.0.1 \
				$((8000 + k * 4 + 3)) "$streams" $((IO_SIZE / streams)); then
				multi_ms=$(($(_io_ms) - t0))
			else
				fail+=("multi($(cat "$cw/multi.log.err" "$cw/multi.log" | tail -n 3 | tr "\n" " "))")
			fi
		fi
	fi

	# counters: the bulk receiver is the server for tunnel 1, the client for tunnel 2
	local p line rec_up=- rec_down=- role v csum=0 race=0 ratio_up=- ratio_down=- fecerr_kt=0
	# the kcptun end of a kcpx <-> kcptun pair (kcptun's own FECErrs, see below)
	local -A kt_role=([client]=0 [server]=0)
	[ "$dir" = kt2kx ] && kt_role[client]=1
	[ "$dir" = kx2kt ] && kt_role[server]=1
	# Two data races in kcptun 20210922 itself (Debian: kcp-go 5.6.1, tjfoc/gmsm 1.3.0)
	# corrupt some of its datagrams, which both ends then count as InCsumErrors; kcptun
	# <-> kcptun shows them too, kcpx <-> kcpx does not (docs/INTEROP.md):
	#  - sm4: gmsm's Sm4Cipher keeps scratch blocks in the cipher object, and kcp-go
	#    calls it from the sending and the receiving goroutine at once;
	#  - several sessions (client --conn N): kcp-go's BlockCrypt keeps encbuf/decbuf in
	#    the object and kcptun hands one BlockCrypt to all its sessions.
	local nconn=1
	for ((i = 0; i < ${#cflags[@]} - 1; i++)); do
		[ "${cflags[$i]}" = --conn ] && nconn=${cflags[$((i + 1))]}
	done
	if [ "$dir" != kx2kx ] && { [ "$crypt" = sm4 ] || [ "$nconn" -gt 1 ]; }; then
		race=1
	fi
	for ((i = 1; i <= ntun; i++)); do
		for role in server client; do
			if [ $role = server ]; then p=${spid[$i]}; else p=${cpid[$i]}; fi
			if ! kill -0 "$p" 2>/dev/null; then
				fail+=("$role$i died")
				continue
			fi
			line=$(_io_snmp "$p" "$cw/$role$i.log")
			if [ -z "$line" ]; then
				fail+=("$role$i: no SNMP line")
				continue
			fi
			v=$(_io_field "$line" InCsumErrors)
			csum=$((csum + v))
			if [ "$race" = 1 ]; then
				# kcptun's own races (see above): tolerated, but not a majority
				local inp
				inp=$(_io_field "$line" InPkts)
				[ $((v * 2)) -lt "$inp" ] || fail+=("$role$i InCsumErrors=$v of InPkts=$inp")
			else
				[ "$v" = 0 ] || fail+=("$role$i InCsumErrors=$v")
			fi
			v=$(_io_field "$line" FECErrs)
			[ "$v" = 0 ] || fail+=("$role$i FECErrs=$v")
			v=$(_io_field "$line" KCPInErrors)
			[ "$v" = 0 ] || fail+=("$role$i KCPInErrors=$v")
			v=$(_io_field "$line" FECRecovered)
			if [ "$ds" = 0 ] || [ "$ps" = 0 ]; then
				local par
				par=$(_io_field "$line" FECParityShards)
				[ "$par" = 0 ] || fail+=("$role$i FECParityShards=$par with FEC off")
				[ "$v" = 0 ] || fail+=("$role$i FECRecovered=$v with FEC off")
			fi
			[ $i = 1 ] && [ $role = server ] && rec_up=$v
			[ $i = 2 ] && [ $role = client ] && rec_down=$v
			# the bulk sender's KCP payload (after snappy): about half with
			# compression (mixio's data), a bit more than IO_SIZE without
			if { [ $i = 1 ] && [ $role = client ]; } || { [ $i = 2 ] && [ $role = server ]; }; then
				v=$(_io_field "$line" BytesSent)
				[ $i = 1 ] && ratio_up=$((v * 100 / IO_SIZE))
				[ $i = 2 ] && ratio_down=$((v * 100 / IO_SIZE))
				if [ "$comp" = comp ] && [ $((v * 10)) -ge $((IO_SIZE * 8)) ]; then
					fail+=("$role$i sent $v bytes for $IO_SIZE with compression")
				elif [ "$comp" = nocomp ] && [ "$v" -lt "$IO_SIZE" ]; then
					fail+=("$role$i sent $v bytes for $IO_SIZE without compression")
				fi
			fi
		done
	done
	if [ "$ds" != 0 ] && [ "$ps" != 0 ] && [ "$loss" -gt 0 ]; then
		[ "$rec_up" != - ] && [ "$rec_up" -le 0 ] && fail+=("upload: FECRecovered=$rec_up at the receiver")
		[ "$rec_down" != - ] && [ "$rec_down" -le 0 ] && fail+=("download: FECRecovered=$rec_down at the receiver")
	fi
	local dropped=$(($(_io_dropped) - drop0))

	_io_stop "${dpids[@]}" "${pids[@]}"
	[ -n "$pcap" ] && _io_stop "$pcap"

	local res=PASS
	if [ ${#fail[@]} -gt 0 ]; then
		res=FAIL
		_io_failed=$((_io_failed + 1))
		local f
		for f in "${fail[@]}"; do echo "   FAIL: $f"; done
		for f in "$cw"/*.log; do
			echo "   -- $(basename "$f")"
			grep -v 'main.go:3[3-6][0-9]' "$f" | tail -n 8 | cut -c1-400 | sed 's/^/   | /'
		done
	fi
	local row
	row=$(printf '| %-4s | %-5s | %-8s | %-6s | %d | %-4s | %-6s | %2s | %d%% | %6s | %6s | %6s | %3s/%3s | %5s | %5s | %5d | %3d | %3d | %s |' \
		"$res" "$dir" "$crypt" "$comp" "$smux" "$fec" "$mode" "$streams" "$loss" \
		"$up_ms" "$down_ms" "$multi_ms" "$ratio_up" "$ratio_down" "$rec_up" "$rec_down" "$dropped" "$csum" "$fecerr_kt" "${extra[*]}")
	_io_results+=("$row")
	echo "   $row"
	[ $res = PASS ]
}

# interop_table FILE: run the cases listed in FILE (- for stdin), one per line:
#   DIR CRYPT COMP SMUX FEC MODE STREAMS LOSS [EXTRA FLAGS...]   (# starts a comment)
# INTEROP_FILTER=regex keeps only the lines that match.
interop_table() {
	local line
	local -a f
	while IFS= read -r line; do
		line=${line%%#*}
		[ -n "${line// /}" ] || continue
		if [ -n "${INTEROP_FILTER:-}" ] && ! echo "$line" | grep -qE "$INTEROP_FILTER"; then
			continue
		fi
		read -r -a f <<<"$line"
		interop_case "${f[@]}" </dev/null || true
	done < <(if [ "$1" = - ]; then cat; else cat "$1"; fi)
}

# interop_summary: the results as a markdown table; fails if a case failed or none ran
interop_summary() {
	echo
	echo "| result | dir | crypt | comp | smux | fec | mode | streams | loss | up ms | down ms | multi ms | sent % up/down | FEC rec up | FEC rec down | dropped | csum err | kcptun FECErrs | extra |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${_io_results[@]}"
	echo
	echo "$((${#_io_results[@]} - _io_failed)) of ${#_io_results[@]} cases passed"
	[ "$_io_failed" -eq 0 ] && [ ${#_io_results[@]} -gt 0 ]
}
