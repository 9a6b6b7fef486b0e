#!/usr/bin/env bash
# What a local, unprivileged user can do to a kcpx run by root, tried as that user
# (nobody): plant symlinks in a world-writable bpffs, bind the tunnel's port, plant
# symlinks where --log points. Each must fail, and kcpx must say why.
#
#   private mount + net namespace (unshare): our own bpffs, our own lo
#     nobody: mkdir /sys/fs/bpf/kcpx; ln -s $victim /sys/fs/bpf/kcpx/lo
#     root:   kcpx down lo / kcpx up lo ... -> refused, $victim's files survive
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir local
chmod 755 "$work"
fail=0
bad() { echo "FAIL: $*"; fail=1; }
id nobody >/dev/null 2>&1 || { echo "SKIP: no user nobody" >&2; exit 4; }
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }

echo "== bpffs: a world-writable bpffs with another user's kcpx directory"
victim=$work/victim
mkdir "$victim"
touch "$victim/precious" "$victim/other"
chmod 755 "$victim"
# the bpffs tests run in a mount namespace of their own: a 1777 bpffs there is ours alone
# a local user's bind on the tunnel's port, with SO_REUSEADDR, on a more specific address
STEAL='
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError as e:
    print("bind refused:", e)
    sys.exit(1)
print("bound", sys.argv[1], sys.argv[2])
'
export STEAL
unshare --mount --net --propagation private bash -s "$KCPX" "$victim" "$work" <<'SH' || fail=1
set -u
KCPX=$1 victim=$2 work=$3
fail=0
bad() { echo "FAIL: $*"; fail=1; }
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
ip link set lo up
mountpoint -q /sys/fs/bpf && umount -l /sys/fs/bpf
# kcpx mounts bpffs itself, 0700
"$KCPX" down lo >/dev/null 2>&1
[ "$(stat -c %a /sys/fs/bpf)" = 1700 ] || bad "kcpx mounted bpffs $(stat -c %a /sys/fs/bpf), not 1700"
umount /sys/fs/bpf
# a bpffs mounted by hand without mode= is 1777: nobody plants the directory and a link
mount -t bpf bpf /sys/fs/bpf
[ "$(stat -c %a /sys/fs/bpf)" = 1777 ] || bad "a plain bpffs mount is not 1777 here"
as_nobody sh -c "mkdir /sys/fs/bpf/kcpx && ln -s '$victim' /sys/fs/bpf/kcpx/lo" ||
	bad "nobody could not plant the link"
for cmd in "down lo" "stats lo" "up lo server -l 127.0.0.1:4000 -t 127.0.0.1:9 --quiet"; do
	out=$(timeout 20 "$KCPX" $cmd 2>&1) && bad "kcpx $cmd accepted another user's pin directory"
	echo "$out" | grep -q "owned by uid 65534.*refusing" || bad "kcpx $cmd did not say why: $out"
done
ls "$victim/precious" "$victim/other" >/dev/null || bad "files in $victim were deleted"
[ -L /sys/fs/bpf/kcpx/lo ] || bad "kcpx removed another user's link"
rm -rf /sys/fs/bpf/kcpx
# a root-owned but world-writable kcpx directory, and a link in it
mkdir /sys/fs/bpf/kcpx && chmod 1777 /sys/fs/bpf/kcpx
as_nobody ln -s "$victim" /sys/fs/bpf/kcpx/lo
out=$("$KCPX" down lo 2>&1) && bad "kcpx down accepted a world-writable pin directory"
echo "$out" | grep -q "writable by group or others" || bad "kcpx down did not say why: $out"
ls "$victim/precious" "$victim/other" >/dev/null || bad "files in $victim were deleted"
rm -rf /sys/fs/bpf/kcpx
# a link where IFACE's directory should be, in root's own 0700 directory
mkdir -m 700 /sys/fs/bpf/kcpx && ln -s "$victim" /sys/fs/bpf/kcpx/lo
out=$("$KCPX" down lo 2>&1) && bad "kcpx down followed a link"
echo "$out" | grep -q "symlink or not a directory" || bad "kcpx down did not say why: $out"
ls "$victim/precious" "$victim/other" >/dev/null || bad "files in $victim were deleted"
rm -rf /sys/fs/bpf/kcpx

# the real thing still works in the 1777 bpffs: pins 0700, only kcpx's names removed
"$KCPX" up lo server -l 127.0.0.1:4000 -t 127.0.0.1:9 --quiet --log "$work/up.log" &
pid=$!
for _ in $(seq 100); do [ -e /sys/fs/bpf/kcpx/lo/kcpx_info ] && break; sleep 0.1; done
[ -e /sys/fs/bpf/kcpx/lo/kcpx_info ] || bad "kcpx up made no pins: $(cat "$work/up.log")"
for d in /sys/fs/bpf/kcpx /sys/fs/bpf/kcpx/lo; do
	[ "$(stat -c %a:%u "$d")" = 700:0 ] || bad "$d is $(stat -c %a:%u "$d"), not 700:0"
done
mkdir /sys/fs/bpf/kcpx/lo/not-kcpx
# once set up, kcpx up keeps uid 0 (its pins are root's) and CAP_NET_ADMIN alone
for _ in $(seq 100); do grep -q "NoNewPrivs:.1" /proc/$pid/status && break; sleep 0.1; done
st=$(grep -E "^(Uid|CapEff|CapPrm|CapBnd|NoNewPrivs):" /proc/$pid/status | tr -s '\t\n' '  ')
echo "kcpx up: $st"
echo "$st" | grep -q "CapPrm: 0000000000001000 CapEff: 0000000000001000 CapBnd: 0000000000001000" ||
	bad "kcpx up kept more than CAP_NET_ADMIN: $st"
echo "$st" | grep -q "NoNewPrivs: 1" || bad "kcpx up without no_new_privs: $st"
# AF_XDP's kernel socket beside it: nobody cannot bind the port on a more specific address
out=$(as_nobody /usr/bin/python3 -c "$STEAL" 127.0.0.1 4000 2>&1)
echo "$out" | grep -q "bind refused" || bad "nobody's bind beside kcpx up's port 4000: $out"
kill -TERM $pid
wait $pid || bad "kcpx up did not exit cleanly"
"$KCPX" down lo >/dev/null 2>&1
[ -d /sys/fs/bpf/kcpx/lo/not-kcpx ] || bad "kcpx removed a name it did not make"
[ -e /sys/fs/bpf/kcpx/lo/kcpx_info ] && bad "kcpx left its own pins"
rm -rf /sys/fs/bpf/kcpx
umount /sys/fs/bpf
exit $fail
SH
ls "$victim/precious" "$victim/other" >/dev/null || bad "files in $victim were deleted"

echo "== a local user's bind on the server's UDP port"
netns_add "${NETNS_TAG}l"
NS_L=${NETNS_TAG}l
in_ns "$NS_L" "$KCPX" server -l :4100 -t 127.0.0.1:9 --quiet --log "$work/srv.log" &
track_pid $!
wait_udp_port "$NS_L" 4100
out=$(in_ns "$NS_L" setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 \
	-c "$STEAL" 127.0.0.1 4100 2>&1) || true
echo "$out" | grep -q "bind refused" || bad "nobody's bind beside kcpx server -l :4100: $out"

echo "== --log and --snmplog in a world-writable directory, and the control socket"
# a directory nobody owns (fs.protected_symlinks guards sticky ones, not this)
pub=$work/pub
mkdir -m 755 "$pub"
chown nobody "$pub"
echo "keep me" >"$work/target"
as_nobody ln -s "$work/target" "$pub/kcpx.log"
as_nobody ln -s "$work/target" "$pub/snmp.csv"
out=$(timeout 10 "$KCPX" server -l :4101 -t 127.0.0.1:9 --log "$pub/kcpx.log" 2>&1) &&
	bad "--log through another user's symlink accepted"
echo "$out" | grep -q -- "--log.*symlink" || bad "--log symlink not named: $out"
as_nobody touch "$pub/theirs.log"
out=$(timeout 10 "$KCPX" server -l :4101 -t 127.0.0.1:9 --log "$pub/theirs.log" 2>&1) &&
	bad "--log into another user's file accepted"
echo "$out" | grep -q -- "--log.*another user" || bad "--log foreign file not named: $out"
in_ns "$NS_L" "$KCPX" server -l :4102 -t 127.0.0.1:9 --log "$pub/own.log" \
	--snmplog "$pub/snmp.csv" --snmpperiod 1 &
track_pid $!
spid=$!
for _ in $(seq 300); do grep -q "snmplog" "$pub/own.log" 2>/dev/null && break; sleep 0.1; done
grep -q "snmplog.*symbolic link" "$pub/own.log" || bad "--snmplog symlink not refused: $(cat "$pub/own.log")"
[ "$(cat "$work/target")" = "keep me" ] || bad "a symlinked log target was written to"
[ "$(stat -c %a "$pub/own.log")" = 600 ] || bad "--log created $(stat -c %a "$pub/own.log"), not 600"
sock=/run/kcpx/$(pgrep -P "$spid" kcpx || echo "$spid").sock
for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
[ "$(stat -c %a /run/kcpx)" = 700 ] || bad "/run/kcpx is $(stat -c %a /run/kcpx), not 700"
[ "$(stat -c %a "$sock" 2>/dev/null)" = 600 ] || bad "control socket $sock not 600"

echo "== keys: the default key warns, KCPTUN_KEY too long fails, --keyfile, no key in ps"
out=$(KCPTUN_KEY=$(head -c 300 /dev/zero | tr '\0' k) timeout 10 "$KCPX" server -l :4103 \
	-t 127.0.0.1:9 2>&1) && bad "a 300-byte KCPTUN_KEY was accepted"
echo "$out" | grep -q "KCPTUN_KEY is too long" || bad "long KCPTUN_KEY not named: $out"
printf 'k%.0s' $(seq 300) >"$work/long.key"
out=$(timeout 10 "$KCPX" server -l :4103 -t 127.0.0.1:9 --keyfile "$work/long.key" 2>&1) &&
	bad "a 300-byte keyfile was accepted"
echo "$out" | grep -q "too long" || bad "long keyfile not named: $out"
out=$(timeout 10 "$KCPX" server -l :4103 -t 127.0.0.1:9 --key a --keyfile "$work/long.key" 2>&1) &&
	bad "--key with --keyfile accepted"
printf 'from a file\n' >"$work/k"
chmod 600 "$work/k"
in_ns "$NS_L" python3 "$TCPIO" echo 9103 &
track_pid $!
in_ns "$NS_L" "$KCPX" server -l :4103 -t 127.0.0.1:9103 --key 'from a file' --quiet \
	--log "$work/k-srv.log" &
track_pid $!
kpid=$!
in_ns "$NS_L" "$KCPX" client -l 127.0.0.1:8103 -r 127.0.0.1:4103 --keyfile "$work/k" --quiet \
	--log "$work/k-cli.log" &
track_pid $!
kcpid=$!
wait_tcp_port "$NS_L" 8103
in_ns "$NS_L" python3 "$TCPIO" multi 127.0.0.1 8103 2 65536 ||
	bad "--keyfile 'from a file' and --key 'from a file' do not talk"
grep -q "kcptun's default" "$work/srv.log" || bad "no warning for the default key"
grep -q "kcptun's default" "$work/k-srv.log" "$work/k-cli.log" && bad "warning with a key given"
kp=$(pgrep -P "$kpid" kcpx || echo "$kpid")
tr '\0' ' ' </proc/$kp/cmdline | grep -q "from a file" && bad "the key is in ps: $(tr '\0' ' ' </proc/$kp/cmdline)"

echo "== privileges once set up: kcpx server/client keep no capability, --user"
# in_ns CMD & is a subshell: the daemon is its child (nsenter execs it)
daemon() { pgrep -P "$1" kcpx || echo "$1"; }
caps() { grep -E "^(Uid|Gid|Groups|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):" \
	/proc/"$(daemon "$1")"/status | tr -s '\t\n' '  '; }
for p in $kpid $kcpid; do
	st=$(caps $p)
	echo "server and client (root, no --user): $st"
	echo "$st" | grep -q "CapPrm: 0000000000000000 CapEff: 0000000000000000 CapBnd: 0000000000000000 CapAmb: 0000000000000000 NoNewPrivs: 1" ||
		bad "kcpx server or client kept capabilities: $st"
done
in_ns "$NS_L" "$KCPX" server -l :4104 -t 127.0.0.1:9103 --key u --user nobody --quiet \
	--log "$work/u-srv.log" &
track_pid $!
upid=$!
in_ns "$NS_L" "$KCPX" client -l 127.0.0.1:8104 -r 127.0.0.1:4104 --key u --user nobody --quiet \
	--log "$work/u-cli.log" &
track_pid $!
cpid=$!
wait_tcp_port "$NS_L" 8104
in_ns "$NS_L" python3 "$TCPIO" multi 127.0.0.1 8104 4 65536 || bad "no transfer as user nobody"
for p in $upid $cpid; do
	st=$(caps $p)
	echo "--user nobody: $st"
	echo "$st" | grep -q "Uid: 65534 65534 65534 65534 Gid: 65534 65534 65534 65534 Groups: CapPrm: 0000000000000000 CapEff: 0000000000000000" ||
		bad "--user nobody did not take: $st"
done
out=$(timeout 10 "$KCPX" server -l :4105 -t 127.0.0.1:9 --key u --user no-such-user-kx 2>&1) &&
	bad "--user no-such-user accepted"
echo "$out" | grep -q "no such user" || bad "unknown --user not named: $out"

[ $fail -eq 0 ] && echo "PASS" || exit 1
