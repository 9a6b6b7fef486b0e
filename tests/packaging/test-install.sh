#!/usr/bin/env bash
# make install into a DESTDIR: every file in its place, the units point at the installed
# binary and pass `systemd-analyze verify`, the installed binary runs, a second install
# keeps an example config the user changed, and the installed logrotate file rotates a
# running daemon's log (logrotate -f) after which its next lines land in the new file.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/kcpx-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0
cd "$top"

# PREFIX inside the scratch dir so that ExecStart= names a binary that exists
prefix=$work/usr
make --no-print-directory -s install PREFIX="$prefix" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
for f in bin/kcpx share/man/man1/kcpx.1 lib/systemd/system/kcpx-server@.service \
	lib/systemd/system/kcpx-client@.service lib/systemd/system/kcpx-up@.service \
	etc/kcpx/server.json.example etc/kcpx/client.json.example etc/kcpx/eth0.json.example \
	share/doc/kcpx/examples/server.json.example etc/logrotate.d/kcpx; do
	[ -e "$prefix/$f" ] || { echo "FAIL: $f not installed"; fail=1; }
done
"$prefix/bin/kcpx" version | grep -q '^kcpx ' || { echo "FAIL: installed kcpx does not run"; fail=1; }
"$prefix/bin/kcpx" server --help | grep -q -- '--listen' || { echo "FAIL: installed kcpx --help"; fail=1; }
grep -q "^ExecStart=$prefix/bin/kcpx server -c $prefix/etc/kcpx/%i.json\$" \
	"$prefix/lib/systemd/system/kcpx-server@.service" ||
	{ echo "FAIL: kcpx-server@ ExecStart does not point at the installed binary"; fail=1; }
[ "$(stat -c %a "$prefix/etc/kcpx/server.json.example")" = 600 ] ||
	{ echo "FAIL: example config (a key goes in there) is not 0600"; fail=1; }

# kcpx check: the examples are valid as shipped (only their key is a placeholder), the key
# is never printed, and a broken config is named key by key
for ex in server client eth0; do
	out=$("$prefix/bin/kcpx" check -c "$prefix/etc/kcpx/$ex.json.example" 2>&1) ||
		{ echo "FAIL: kcpx check $ex.json.example: $out"; fail=1; }
	grep -q '^crypt: aes-128$' <<<"$out" || { echo "FAIL: check prints no settings: $out"; fail=1; }
	grep -q 'REPLACE' <<<"$out" && { echo "FAIL: kcpx check printed the key"; fail=1; }
done
printf '{"listen": ":70000", "target": "127.0.0.1:22", "mtu": 9}' >"$work/bad.json"
out=$("$prefix/bin/kcpx" check -c "$work/bad.json" 2>&1) && { echo "FAIL: check passed a bad config"; fail=1; }
grep -q "'mtu' must be within" <<<"$out" || { echo "FAIL: check did not name mtu: $out"; fail=1; }
printf '{"listen": ":70000", "target": "127.0.0.1:22"}' >"$work/bad.json"
out=$("$prefix/bin/kcpx" check -c "$work/bad.json" 2>&1) && { echo "FAIL: check passed port 70000"; fail=1; }
grep -q "listen ':70000'" <<<"$out" || { echo "FAIL: check did not name listen: $out"; fail=1; }

# units: systemd-analyze verify on one instance of each template (PID 1 need not be systemd)
cd "$prefix/lib/systemd/system"
for u in kcpx-server kcpx-client kcpx-up; do ln -s "$u@.service" "$u@eth0.service"; done
out=$(systemd-analyze verify --man=no ./kcpx-server@eth0.service ./kcpx-client@eth0.service \
	./kcpx-up@eth0.service 2>&1) || { echo "FAIL: systemd-analyze verify: $out"; fail=1; }
[ -z "$out" ] || { echo "FAIL: systemd-analyze verify says: $out"; fail=1; }
for u in kcpx-server kcpx-client kcpx-up; do
	grep -q '^Type=notify$' "$u@.service" || { echo "FAIL: $u@ is not Type=notify"; fail=1; }
	grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$u@.service" || { echo "FAIL: $u@ has no ExecReload"; fail=1; }
	grep -q '^CapabilityBoundingSet=' "$u@.service" || { echo "FAIL: $u@ keeps every capability"; fail=1; }
done
cd "$top"

# a changed example survives a second install
echo '{"listen": ":1"}' >"$prefix/etc/kcpx/server.json.example"
make --no-print-directory -s install PREFIX="$prefix" >"$work/log" 2>&1 || { cat "$work/log"; exit 1; }
grep -q '":1"' "$prefix/etc/kcpx/server.json.example" || { echo "FAIL: install overwrote a config"; fail=1; }
grep -q KEEP "$work/log" || { echo "FAIL: install did not say it kept the config"; fail=1; }

# DESTDIR staging: everything under DESTDIR, the units name the final path
make --no-print-directory -s install PREFIX=/usr DESTDIR="$work/stage" >/dev/null 2>&1 ||
	{ echo "FAIL: make install DESTDIR"; fail=1; }
grep -q '^ExecStart=/usr/bin/kcpx up %i -c /etc/kcpx/%i.json$' \
	"$work/stage/lib/systemd/system/kcpx-up@.service" || { echo "FAIL: DESTDIR units"; fail=1; }
[ -x "$work/stage/usr/bin/kcpx" ] && [ -e "$work/stage/etc/kcpx/eth0.json.example" ] &&
	[ -e "$work/stage/etc/logrotate.d/kcpx" ] || { echo "FAIL: DESTDIR layout"; fail=1; }

# logrotate: the installed file, pointed at a scratch log dir, on a daemon that keeps
# running (a server on loopback; no traffic). kcpx writes O_APPEND, so after copytruncate
# its next line (a reload's) starts the new file, with no hole of NULs before it.
wait_grep() { for _ in $(seq 1 200); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
mkdir -m 0700 "$work/logs"
sed "s|^/var/log/kcpx/\*.log {|$work/logs/*.log {|" "$prefix/etc/logrotate.d/kcpx" >"$work/logrotate.conf"
grep -q "^$work/logs/" "$work/logrotate.conf" || { echo "FAIL: logrotate file has no /var/log/kcpx/*.log"; fail=1; }
"$prefix/bin/kcpx" server -l 127.0.0.1:0 -t 127.0.0.1:9 --key rot --log "$work/logs/server.log" &
kpid=$!
trap 'kill $kpid 2>/dev/null || true; rm -rf "$work"' EXIT
wait_grep "listening\|listen" "$work/logs/server.log" || { echo "FAIL: no first log line"; fail=1; }
logrotate -f -s "$work/logrotate.state" "$work/logrotate.conf" >"$work/lr.out" 2>&1 ||
	{ echo "FAIL: logrotate: $(cat "$work/lr.out")"; fail=1; }
[ -s "$work/logs/server.log.1" ] || { echo "FAIL: nothing rotated: $(ls "$work/logs")"; fail=1; }
kill -HUP $kpid
wait_grep "reload: nothing changed" "$work/logs/server.log" ||
	{ echo "FAIL: the reload's line is not in the new log"; ls -l "$work/logs"; fail=1; }
grep -q "reload: " "$work/logs/server.log.1" && { echo "FAIL: the reload went to the rotated file"; fail=1; }
[ "$(head -c 1 "$work/logs/server.log" | od -An -tx1 | tr -d ' ')" != 00 ] ||
	{ echo "FAIL: the new log starts with a hole"; fail=1; }
[ "$(stat -c %a "$work/logs/server.log")" = 600 ] || { echo "FAIL: the log is not 0600 after rotation"; fail=1; }
kill $kpid
wait $kpid 2>/dev/null || true
[ $fail -eq 0 ] && echo "install: ok"
exit $fail
