#!/usr/bin/env bash
# What the tools' tests share. Source it once in the tree's top:
#   cd "$(dirname "$0")/../.." || exit 1
#   . tools/tests/lib.sh
# ok MSG       a PASS line
# bad MSG      a FAIL line, counted in $fails (0 when sourced)
# test_tmp NAME   $TMP: a new directory /tmp/kcpx-NAME.XXXXXX, removed when the test exits
#                 (it takes the EXIT trap)
fails=0
ok() { echo "PASS $*"; }
bad() {
	echo "FAIL $*"
	fails=$((fails + 1))
}
test_tmp() {
	TMP=$(mktemp -d "/tmp/kcpx-$1.XXXXXX") || exit 1
	trap 'rm -rf "$TMP"' EXIT
}
