#!/usr/bin/env bash
# build.sh COMMIT [TARGET...]: the campaign's two builds of the fuzz targets from
# `git archive COMMIT` (so a build is of one commit, whatever the work tree holds):
#   fast  libFuzzer + UBSan (-fno-sanitize-recover=undefined), -O2, no ASan: what the
#         campaigns run, several times the executions per CPU-second of the ASan build
#   asan  ASan + UBSan at -O1 as `make fuzz` builds them: what replay.sh runs every unit
#         of a grown corpus through
# into $FUZZ_DIR/bin/COMMIT/{fast,asan}. Default targets: every tests/fuzz/fuzz_*.c.
set -eu
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || die "usage: build.sh COMMIT [TARGET...]"
commit=$(fuzz_commit "$1")
shift
dir=$FUZZ_DIR/bin/$commit
src=$dir/src
CLANG=${CLANG:-clang}

if [ ! -f "$src/.complete" ]; then
	rm -rf "$src"
	mkdir -p "$src"
	git -C "$REPO" archive "$commit" | tar -x -C "$src"
	touch "$src/.complete"
fi
cd "$src"
if [ $# -eq 0 ]; then
	set -- $(ls tests/fuzz/fuzz_*.c | sed 's|.*/||; s|\.c$||')
fi
core=$(ls user/core/*.c)
# the libraries the Makefile links (LDLIBS); the core needs only some, the rest are
# harmless and keep one list
libs=$(sed -n 's/^LDLIBS = //p' Makefile)
[ -n "$libs" ] || die "no LDLIBS in $commit's Makefile"
common="-g -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuser -fno-sanitize-recover=undefined"
mkdir -p "$dir/fast" "$dir/asan"
for t in "$@"; do
	[ -f "tests/fuzz/$t.c" ] || die "no target $t at $commit"
	echo "  FAST     $dir/fast/$t"
	# shellcheck disable=SC2086
	$CLANG $common -O2 -fsanitize=fuzzer,undefined -o "$dir/fast/$t.tmp" \
		"tests/fuzz/$t.c" $core $libs
	mv "$dir/fast/$t.tmp" "$dir/fast/$t"
	echo "  ASAN     $dir/asan/$t"
	# shellcheck disable=SC2086
	$CLANG $common -O1 -fsanitize=fuzzer,address,undefined -o "$dir/asan/$t.tmp" \
		"tests/fuzz/$t.c" $core $libs
	mv "$dir/asan/$t.tmp" "$dir/asan/$t"
done
