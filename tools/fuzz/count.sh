#!/usr/bin/env bash
# count.sh TARGET [COMMIT] [-v]: executions of TARGET summed over its log's segments (all
# commits, or only COMMIT's). -v: each segment on stderr (commit, start..end, executions,
# CPU seconds, executions per CPU-second, how it ended), then "EXECUTIONS CPU_SECONDS".
set -eu
. "$(dirname "$0")/lib.sh"

verbose= commit=
[ $# -ge 1 ] || die "usage: count.sh TARGET [COMMIT] [-v]"
target=$1
shift
for a in "$@"; do
	case $a in
	-v) verbose=1 ;;
	*) commit=$(fuzz_commit "$a") ;;
	esac
done
fuzz_count "$target" "$commit" "$verbose"
