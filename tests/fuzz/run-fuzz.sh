#!/usr/bin/env bash
# Run one libFuzzer target for a bounded time over its seed corpus (a scratch copy, so
# the checked-in seeds are not changed). Usage: run-fuzz.sh BIN CORPUS_DIR SECONDS
set -eu
bin=$1 corpus=$2 secs=${3:-20}
work=$(mktemp -d /tmp/kcpx-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null || true
"$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$work"
