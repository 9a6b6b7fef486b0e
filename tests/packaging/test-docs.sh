#!/usr/bin/env bash
# The man page and the README against the binary: every flag of `kcpx client --help` and
# `kcpx server --help` (config.c's option table), every subcommand and its own flags must
# appear in both, and kcpx.1 must render with `man -l` without a single warning.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
KCPX=${KCPX:-$top/build/kcpx}
MAN=${MAN:-$top/build/kcpx.1}
README=$top/README.md
fail=0

warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$MAN" 2>&1 >/dev/null || echo "man failed")
[ -z "$warn" ] || { echo "FAIL: man -l warns:"; echo "$warn"; fail=1; }
text=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$MAN" 2>/dev/null | col -b)
[ -n "$text" ] || { echo "FAIL: $MAN renders empty"; exit 1; }

flags=$( { "$KCPX" client --help; "$KCPX" server --help; } |
	grep -oE '^  --[A-Za-z0-9-]+(, -[A-Za-z0-9]+)?' | tr -d ' ' | tr ',' '\n' | sort -u)
n=$(echo "$flags" | wc -l)
[ "$n" -ge 40 ] || { echo "FAIL: only $n flags found in --help"; fail=1; }
# subcommands and their own flags, as `kcpx --help` and the usage lines give them
# (-ds and --ds are the same flag: either spelling counts)
for f in $flags --xdp-mode --queues --napi; do
	re="(^|[^A-Za-z0-9-])--?${f##*-}([^A-Za-z0-9-]|\$)"
	[ "${f#--}" = "$f" ] || re="(^|[^A-Za-z0-9-])--?${f#--}([^A-Za-z0-9-]|\$)"
	grep -qE -- "$re" <<<"$text" || { echo "FAIL: $f is missing from the man page"; fail=1; }
	grep -qE -- "$re" "$README" || { echo "FAIL: $f is missing from README.md"; fail=1; }
done
cmds=$("$KCPX" --help | sed -n 's/^  \([a-z]\+\) .*/\1/p; s/^  \([a-z]\+\)$/\1/p')
for c in $cmds; do
	grep -qE "kcpx $c\b" <<<"$text" || { echo "FAIL: command '$c' missing from the man page"; fail=1; }
	grep -qE "kcpx $c\b" "$README" || { echo "FAIL: command '$c' missing from README.md"; fail=1; }
done
echo "checked $n flags and commands: $(echo $cmds)"
exit $fail
