#!/usr/bin/env bash
# replay.sh TARGET [COMMIT]: every unit of TARGET's grown corpus, one at a time, through
# the ASan + UBSan build of COMMIT (default: the commit of the target's last segment), at
# idle priority. The campaigns run a build without ASan: this is where a heap error they
# could not see shows up. A unit that fails is copied to findings/TARGET/ and the rest
# still run. One line per replay in logs/replay.log; libFuzzer's output in
# logs/replay-TARGET.out. Exit 0 when every unit ran clean, 1 when one failed.
set -eu
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || die "usage: replay.sh TARGET [COMMIT]"
target=$1
if [ $# -ge 2 ]; then
	commit=$(fuzz_commit "$2")
else
	commit=$(fuzz_last_commit "$target")
	[ -n "$commit" ] || die "$target has no segment yet: name a commit"
fi
bin=$FUZZ_DIR/bin/$commit/asan/$target
corpus=$FUZZ_DIR/corpus/$target
out=$FUZZ_DIR/logs/replay-$target.out
[ -x "$bin" ] || die "no $bin: tools/fuzz/build.sh $commit $target"
[ -d "$corpus" ] || die "no corpus $corpus"
mkdir -p "$FUZZ_DIR/findings/$target"

# a snapshot of the list: the campaign keeps adding units while this runs
mapfile -t units < <(find "$corpus" -maxdepth 1 -type f | sort)
n=${#units[@]}
: >"$out"
bad=0 ran=0 i=0 batch=200
start=$(date -u +%FT%TZ)
while [ "$i" -lt "$n" ]; do
	set +e
	chrt -i 0 nice -n 19 "$bin" -rss_limit_mb=2048 -timeout=300 "${units[@]:i:batch}" \
		>>"$out.part" 2>&1
	rc=$?
	set -e
	done_now=$(grep -c '^Executed ' "$out.part" || true)
	ran=$((ran + done_now))
	if [ "$rc" -eq 0 ]; then
		i=$((i + batch))
	else
		# the unit that failed is the one after the last that completed
		fail=${units[$((i + done_now))]}
		cp "$fail" "$FUZZ_DIR/findings/$target/replay-$commit-$(basename "$fail")"
		echo "FAILED: $fail (rc $rc)" >>"$out.part"
		bad=$((bad + 1))
		i=$((i + done_now + 1))
	fi
	cat "$out.part" >>"$out"
	rm -f "$out.part"
done
if [ "$bad" -eq 0 ]; then
	how="ok"
else
	how="$bad FAILED (findings/$target/replay-$commit-*, $out)"
fi
line="$start..$(date -u +%FT%TZ) $target $commit asan: $ran of $n units ran, $how"
echo "$line" | tee -a "$FUZZ_DIR/logs/replay.log"
[ "$bad" -eq 0 ] && [ "$ran" -eq "$n" ]
