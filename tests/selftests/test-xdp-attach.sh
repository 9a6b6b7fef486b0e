#!/usr/bin/env bash
# kcpx's XDP and TC programs on a veth, in native and in skb mode: attach, pins readable
# by bpftool with field names, ping/TCP/other UDP unaffected, DSCP marking on egress,
# and `kcpx down` leaving no program, link, qdisc or pin behind — also after a crash,
# and also when the pins were removed by hand. `kcpx up --napi threaded` turns threaded
# NAPI on, and a stop, or `kcpx down` after a crash, turns it off again.
#
#   [ $NS_A ]                                   [ $NS_B ]
#   $IF_A 10.N.0.1 ---------- veth ---------- $IF_B 10.N.0.2
#   ping, TCP, UDP senders                      XDP kcpx_xdp_steer (server, port 4000)
#                                               TC  kcpx_tc_egress (--dscp 46)
#                                               pins /sys/fs/bpf/kcpx/$IF_B/
set -eu
cd "$(dirname "$0")/../.."
. tests/lib/netns.sh
need_root

KCPX=$PWD/build/kcpx
TOOL=$PWD/build/tests/bpf/test_xsk
PORT=4000
for b in "$KCPX" "$TOOL"; do
	[ -x "$b" ] || { echo "missing $b: run make first" >&2; exit 1; }
done
export LIBXDP_SKIP_DISPATCHER=1

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

bpffs_mount
netns_pair
PIN=/sys/fs/bpf/kcpx/$IF_B
on_cleanup "in_b $KCPX down $IF_B"
on_cleanup "rm -rf $PIN; rmdir /sys/fs/bpf/kcpx"

prog_ids() { # the ids of the programs attached to IF_B, XDP then TC
	ip -n "$NS_B" -d link show "$IF_B" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p' | head -1
	in_b tc filter show dev "$IF_B" egress | sed -n 's/.*kcpx_tc_egress.* id \([0-9]*\).*/\1/p' |
		head -1
}

tcp_check() { # 256 KiB through a TCP echo in B, compared
	in_b python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1); s.settimeout(60)
c, _ = s.accept()
while True:
    d = c.recv(65536)
    if not d: break
    c.sendall(d)
' &
	local srv=$!
	track_pid $srv
	wait_tcp_port "$NS_B" 5001
	in_a python3 -c '
import socket, sys, os, threading
data = os.urandom(256 * 1024)
c = socket.create_connection((sys.argv[1], 5001), timeout=60)
t = threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR))); t.start()
got = b""
while True:
    d = c.recv(65536)
    if not d: break
    got += d
t.join()
sys.exit(0 if got == data else 1)
' "$IP_B" || fail "TCP through $IF_B broken"
	wait $srv || true
}

udp_to_b() { # COUNT datagrams from A to B:PORT
	in_a python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])): s.sendto(bytes(100), (sys.argv[1], int(sys.argv[2])))
' "$IP_B" "$1" "$2"
}

stat_of() { # MAP FIELD: from `kcpx stats`
	in_b "$KCPX" stats "$IF_B" | awk -v m="$1" -v f="$2" '
		/^[a-z]/ { cur = $1 } cur == m && $1 == f { print $2 }'
}

for mode in native skb; do
	echo "== $mode mode"
	out=$(in_b "$TOOL" attach "$IF_B" --port $PORT --mode $mode --dscp 46)
	echo "$out"
	echo "$out" | grep -q "mode=$mode" || fail "not attached in $mode mode"
	if [ $mode = native ]; then flag=xdp; else flag=xdpgeneric; fi
	ip -n "$NS_B" link show "$IF_B" | grep -qw "$flag" || fail "ip link shows no $flag"
	read -r xdp_id tc_id < <(prog_ids | paste -sd' ')
	[ -n "$xdp_id" ] && [ -n "$tc_id" ] || fail "programs not found (xdp=$xdp_id tc=$tc_id)"
	echo "xdp prog $xdp_id, tc prog $tc_id"

	# counters are pinned and bpftool prints their fields by name (BTF)
	for m in kcpx_xdp_stats kcpx_tc_stats kcpx_xsk_stats kcpx_snmp kcpx_xsks kcpx_lports \
		kcpx_info kcpx_xsk_queues; do
		[ -e "$PIN/$m" ] || fail "$PIN/$m not pinned"
	done
	bpftool map dump pinned "$PIN/kcpx_xdp_stats" | grep -q '"pass_no_xsk"' ||
		fail "bpftool shows no field names for kcpx_xdp_stats"
	bpftool map dump pinned "$PIN/kcpx_snmp" | grep -q '"BytesSent"' ||
		fail "bpftool shows no field names for kcpx_snmp"
	bpftool map dump pinned "$PIN/kcpx_info" | grep -q '"ifindex"' || fail "kcpx_info"

	# traffic that is not the tunnel's goes on as before
	in_a ping -c 3 -i 0.2 -W 2 -q "$IP_B" >/dev/null || fail "ping broken in $mode mode"
	tcp_check
	pass0=$(stat_of kcpx_xdp_stats pass_no_xsk)
	udp_to_b $PORT 5
	# the datagrams reach XDP in B's softirq, not before udp_to_b returns: wait for the
	# counter (bounded), then check it stopped at exactly 5
	for _ in $(seq 100); do
		pass1=$(stat_of kcpx_xdp_stats pass_no_xsk)
		[ $((pass1 - pass0)) -ge 5 ] && break
		sleep 0.1
	done
	[ $((pass1 - pass0)) -eq 5 ] || fail "pass_no_xsk moved by $((pass1 - pass0)), want 5"
	[ "$(stat_of kcpx_xdp_stats pass_other)" -ge 0 ] || fail "stats"

	# what B sends from the tunnel port leaves with DSCP 46 (TOS 0xb8), checksum intact
	in_a python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
s.bind(("0.0.0.0", 6000)); s.settimeout(60)
d, anc, _, _ = s.recvmsg(2048, 64)
tos = [c[2][0] for c in anc if c[1] == socket.IP_TOS]
print("received tos", tos)
sys.exit(0 if tos == [0xb8] and d == b"marked" else 1)
' &
	rcv=$!
	track_pid $rcv
	wait_udp_port "$NS_A" 6000
	in_b python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[2]))); s.sendto(b"marked", (sys.argv[1], 6000))
' "$IP_A" $PORT
	wait $rcv || fail "DSCP not set on the tunnel port's egress"
	[ "$(stat_of kcpx_tc_stats dscp_marked)" -ge 1 ] || fail "dscp_marked did not move"

	# kcpx down: nothing of ours stays
	in_b "$KCPX" down "$IF_B"
	ip -n "$NS_B" link show "$IF_B" | grep -q "prog/xdp" && fail "XDP still attached"
	in_b tc filter show dev "$IF_B" egress | grep -q kcpx && fail "TC filter still there"
	in_b tc qdisc show dev "$IF_B" | grep -q clsact && fail "clsact we made still there"
	[ -e "$PIN" ] && fail "$PIN still there"
	for id in $xdp_id $tc_id; do
		# programs are freed after an RCU grace period: give it a moment
		for _ in $(seq 100); do
			bpftool prog show id "$id" >/dev/null 2>&1 || break
			sleep 0.1
		done
		bpftool prog show id "$id" >/dev/null 2>&1 && fail "program $id still loaded"
	done
	bpftool link show 2>/dev/null | grep -qE "prog_id ($xdp_id|$tc_id)\b" && fail "a link remains"
	echo "$mode: ok"
done

echo "== --napi: threaded NAPI while up, off again after a stop or a crash"
napi() { ip netns exec "$NS_B" cat /sys/class/net/"$IF_B"/threaded; }
up_napi() { # up_napi [--napi MODE]: kcpx up on IF_B, in the background; sets $up
	# shellcheck disable=SC2086
	nsenter --net=/run/netns/"$NS_B" "$KCPX" up "$IF_B" "$@" server -l ":$PORT" \
		-t 127.0.0.1:9 >/tmp/kx-napi.$$ 2>&1 &
	up=$!
	track_pid $up
	for _ in $(seq 300); do
		grep -q "AF_XDP sockets open" /tmp/kx-napi.$$ && return 0
		sleep 0.1
	done
	fail "kcpx up $*: $(cat /tmp/kx-napi.$$)"
}
[ "$(napi)" = 0 ] || fail "threaded NAPI on before the test"
up_napi # the default leaves the device alone
[ "$(napi)" = 0 ] || fail "threaded NAPI on without --napi"
kill -TERM $up
wait $up 2>/dev/null || true
up_napi --napi threaded
[ "$(napi)" = 1 ] || fail "--napi threaded left it off: $(cat /tmp/kx-napi.$$)"
grep -q "NAPI polls in threads now" /tmp/kx-napi.$$ || fail "not logged: $(cat /tmp/kx-napi.$$)"
kill -TERM $up
wait $up 2>/dev/null || true
[ "$(napi)" = 0 ] || fail "a stopped kcpx left threaded NAPI on"
up_napi --napi auto # IF_B is a veth
[ "$(napi)" = 1 ] || fail "--napi auto left a veth's NAPI unthreaded"
kill -9 $up
wait $up 2>/dev/null || true
[ "$(napi)" = 1 ] || fail "threaded NAPI went off with the crash alone"
in_b "$KCPX" down "$IF_B"
[ "$(napi)" = 0 ] || fail "kcpx down after a crash left threaded NAPI on"
out=$(in_b "$KCPX" up "$IF_B" --napi sometimes server -l ":$PORT" -t 127.0.0.1:9 2>&1) &&
	fail "--napi sometimes accepted"
echo "$out" | grep -q "napi" || fail "bad --napi value: unclear message: $out"
rm -f /tmp/kx-napi.$$
echo "napi: ok"

echo "== refuse while up, clean up after a crash"
# nsenter execs the tool, so $! is the holder itself
nsenter --net=/run/netns/"$NS_B" "$TOOL" attach "$IF_B" --port $PORT --hold \
	>/tmp/kx-holder.$$ &
holder=$!
track_pid $holder
on_cleanup "rm -f /tmp/kx-holder.$$"
# the pins appear before the programs are attached and kcpx_info names the holder: wait
# for the holder's own word that its attach is complete
wait_log /tmp/kx-holder.$$ "^attached $IF_B" 30 || fail "the holder did not attach"
if in_b "$TOOL" attach "$IF_B" --port $PORT 2>/tmp/kx-attach.$$; then
	fail "a second attach succeeded while the first holder lives"
fi
grep -q "already up" /tmp/kx-attach.$$ || fail "no clear refusal: $(cat /tmp/kx-attach.$$)"
rm -f /tmp/kx-attach.$$
kill -9 $holder
wait $holder 2>/dev/null || true
# the daemon is dead; its programs and counters are not
[ -e "$PIN/kcpx_xdp_stats" ] || fail "pins vanished with the process"
in_b "$KCPX" stats "$IF_B" | grep -q rx_packets || fail "stats unreadable after the crash"
# a new attach cleans up the dead one's state itself
out=$(in_b "$TOOL" attach "$IF_B" --port $PORT 2>&1) || fail "re-attach after crash: $out"
echo "$out" | grep -q "gone found" || fail "the dead daemon's state was not noticed: $out"
in_b "$KCPX" down "$IF_B"
ip -n "$NS_B" link show "$IF_B" | grep -q "prog/xdp" && fail "XDP left after crash + down"
[ -e "$PIN" ] && fail "pins left after crash + down"

echo "== down with the pins removed by hand"
in_b "$TOOL" attach "$IF_B" --port $PORT --mode skb >/dev/null
rm -rf "$PIN"
# nothing says whose program that is any more: a new attach refuses, and says what to do
if in_b "$TOOL" attach "$IF_B" --port $PORT 2>/tmp/kx-attach.$$; then
	fail "attached over an orphaned kcpx program"
fi
grep -q "no running kcpx owns" /tmp/kx-attach.$$ || fail "unclear: $(cat /tmp/kx-attach.$$)"
rm -f /tmp/kx-attach.$$
in_b "$KCPX" down "$IF_B"
ip -n "$NS_B" link show "$IF_B" | grep -q "prog/xdp" && fail "XDP left (no pins)"
in_b tc filter show dev "$IF_B" egress | grep -q kcpx && fail "TC left (no pins)"
out=$(in_b "$KCPX" down "$IF_B")
echo "$out" | grep -q "not up" || fail "second down: $out"
[ -e /sys/fs/bpf/kcpx ] && ! ls -A /sys/fs/bpf/kcpx | grep -q . && fail "empty /sys/fs/bpf/kcpx left"
echo "PASS"
