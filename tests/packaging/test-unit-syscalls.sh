#!/usr/bin/env bash
# The seccomp filter of the kcpx-server@ and kcpx-client@ units against the system calls
# kcpx really makes. PID 1 here is not systemd, so the units cannot be started; instead
# the filter is computed the way systemd reads it (the first SystemCallFilter= line an
# allow list, each later one adding or, with ~, removing; groups expanded by
# `systemd-analyze syscall-filter`) and a server and a client run under strace through
# what a service does: start, drop privileges (the server with "user": "nobody"), carry
# streams, reload on SIGHUP, stop on SIGTERM. Any call outside the filter would kill the
# service with SIGSYS; a socket family outside RestrictAddressFamilies= would fail.
#
#   [ A ] tcpio multi -> strace kcpx client ==udp== [ B ] strace kcpx server -> tcpio echo
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir unitsys
command -v strace >/dev/null && command -v systemd-analyze >/dev/null ||
	{ echo "SKIP: needs strace and systemd-analyze"; exit 4; }
top=$(cd "$(dirname "$0")/../.." && pwd)
fail=0

# the allowed set of one unit, one name a line
allowed() {
	python3 - "$1" <<'PY'
import subprocess, sys
cache = {}
def expand(name):
    if not name.startswith("@"):
        return {name}
    if name not in cache:
        out = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True,
                             capture_output=True, text=True).stdout.split("\n")
        names = set()
        for line in out[1:]:
            line = line.strip()
            if line and not line.startswith("#"):
                names |= expand(line)
        cache[name] = names
    return cache[name]
allow = None
for line in open(sys.argv[1]):
    if not line.startswith("SystemCallFilter="):
        continue
    v = line.split("=", 1)[1].strip()
    deny = v.startswith("~")
    names = set().union(*(expand(n) for n in v.lstrip("~").split()))
    if allow is None:
        assert not deny, "the first SystemCallFilter= of these units is an allow list"
        allow = names
    elif deny:
        allow -= names
    else:
        allow |= names
print("\n".join(sorted(allow)))
PY
}

netns_pair
cat >"$work/server.json" <<JSON
{ "listen": ":4000", "target": "127.0.0.1:9001", "key": "unit-test", "user": "nobody",
  "log": "$work/server.log" }
JSON
cat >"$work/client.json" <<JSON
{ "localaddr": "127.0.0.1:8388", "remoteaddr": "$IP_B:4000", "key": "unit-test",
  "log": "$work/client.log" }
JSON
# the server reads its file again on SIGHUP as nobody
chmod 755 "$work"
chmod 644 "$work/server.json"
in_b python3 "$TCPIO" echo 9001 & track_pid $!
# nsenter execs strace, strace runs kcpx: $! is strace's pid, kcpx its child
nsenter --net=/run/netns/"$NS_B" strace -f -qq -o "$work/server.trace" \
	"$KCPX" server -c "$work/server.json" & spid=$!
track_pid $spid
nsenter --net=/run/netns/"$NS_A" strace -f -qq -o "$work/client.trace" \
	"$KCPX" client -c "$work/client.json" & cpid=$!
track_pid $cpid
wait_udp_port "$NS_B" 4000
wait_tcp_port "$NS_A" 8388
in_a timeout 60 python3 "$TCPIO" multi 127.0.0.1 8388 4 $((64 << 10)) ||
	{ echo "FAIL: echo streams"; fail=1; }
for p in $spid $cpid; do pkill -HUP -P "$p"; done
wait_log "$work/server.log" "reload: nothing changed" 10 || fail=1
wait_log "$work/client.log" "reload: nothing changed" 10 || fail=1
for p in $spid $cpid; do pkill -TERM -P "$p"; done
wait $spid $cpid 2>/dev/null || true

for role in server client; do
	allowed "$top/dist/systemd/kcpx-$role@.service.in" >"$work/$role.allowed"
	sed -E 's/^[0-9]+ +//; /^(\+\+\+|---)/d; s/\(.*//; /^<\.\.\./d; s/ .*//' \
		"$work/$role.trace" | sort -u >"$work/$role.used"
	n=$(wc -l <"$work/$role.used")
	[ "$n" -gt 20 ] || { echo "FAIL: $role: only $n system calls traced"; fail=1; }
	bad=$(comm -23 "$work/$role.used" "$work/$role.allowed" | tr '\n' ' ')
	echo "$role: $n distinct system calls, outside kcpx-$role@'s filter: ${bad:-none}"
	[ -z "$bad" ] || fail=1
	# RestrictAddressFamilies= too: a socket of another family fails with EAFNOSUPPORT
	fams=$(grep -oE 'socket\((AF_[A-Z0-9]+)' "$work/$role.trace" | sed 's/socket(//' | sort -u | tr '\n' ' ')
	okf=$(sed -n 's/^RestrictAddressFamilies=//p' "$top/dist/systemd/kcpx-$role@.service.in")
	for f in $fams; do
		case " $okf " in *" $f "*) ;; *) echo "FAIL: $role opens $f sockets, outside RestrictAddressFamilies=$okf"; fail=1 ;; esac
	done
	echo "$role: socket families $fams"
	grep -qE -- "--- SIGSYS|killed by SIGSYS" "$work/$role.trace" &&
		{ echo "FAIL: $role got SIGSYS"; fail=1; }
done
grep -q "capset" "$work/server.used" || { echo "FAIL: the server never dropped its capabilities"; fail=1; }
grep -q "seccomp" "$work/server.used" || echo "note: the server installed no seccomp filter of its own"

[ $fail -ne 0 ] && tail -n 5 "$work"/*.log
exit $fail
