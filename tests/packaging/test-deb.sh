#!/usr/bin/env bash
# make deb: the package builds, lintian finds no error, and it installs into a scratch
# root and is removed and purged from it without leaving a file behind.
#   (dpkg --root with a fresh database; maintainer scripts run chrootless and see no
#    systemd there, so they do nothing. Dependencies are this machine's, not the root's.)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-build}
work=$(mktemp -d /tmp/kcpx-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0
cd "$top"

make --no-print-directory deb >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
deb=$(ls "$OUT"/deb/kcpx_*.deb)
echo "built $deb"
dpkg-deb -f "$deb" Depends | grep -q 'libsodium' || { echo "FAIL: Depends lacks the runtime libraries"; fail=1; }
dpkg-deb -c "$deb" >"$work/list"
grep -q ' ./usr/bin/kcpx$' "$work/list" || { echo "FAIL: no /usr/bin/kcpx in the package"; fail=1; }
grep -q 'lib/systemd/system/kcpx-up@.service' "$work/list" || { echo "FAIL: no units"; fail=1; }

lintian --tag-display-limit 0 "$deb" >"$work/lintian" 2>&1 || true
grep -v 'root privileges' "$work/lintian" || true
if grep -q '^E:' "$work/lintian"; then echo "FAIL: lintian errors"; fail=1; fi

root=$work/root
mkdir -p "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/info"
touch "$root/var/lib/dpkg/status"
dpk() { dpkg --root="$root" --force-script-chrootless --force-depends --force-not-root "$@"; }
dpk -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; echo "FAIL: dpkg -i"; exit 1; }
[ -x "$root/usr/bin/kcpx" ] || { echo "FAIL: not installed"; fail=1; }
"$root/usr/bin/kcpx" version | grep -q '^kcpx ' || { echo "FAIL: installed kcpx does not run"; fail=1; }
[ -e "$root/etc/kcpx/server.json.example" ] || { echo "FAIL: no /etc/kcpx example"; fail=1; }
grep -q '^Status: install ok installed' "$root/var/lib/dpkg/status" || { echo "FAIL: dpkg status"; fail=1; }
# a user's config in /etc/kcpx survives remove; purge takes the conffiles
echo '{}' >"$root/etc/kcpx/mine.json"
dpk -r kcpx >>"$work/dpkg.log" 2>&1 || { echo "FAIL: dpkg -r"; fail=1; }
[ ! -e "$root/usr/bin/kcpx" ] || { echo "FAIL: remove left the binary"; fail=1; }
[ -e "$root/etc/kcpx/mine.json" ] || { echo "FAIL: remove deleted the user's config"; fail=1; }
rm "$root/etc/kcpx/mine.json"
dpk -P kcpx >>"$work/dpkg.log" 2>&1 || { echo "FAIL: dpkg -P"; fail=1; }
left=$(cd "$root" && find . -path ./var -prune -o -type f -print)
[ -z "$left" ] || { echo "FAIL: purge left files: $left"; fail=1; }
[ ! -e "$root/etc/kcpx" ] || { echo "FAIL: purge left /etc/kcpx"; fail=1; }
[ $fail -ne 0 ] && cat "$work/dpkg.log"
[ $fail -eq 0 ] && echo "deb: ok"
exit $fail
