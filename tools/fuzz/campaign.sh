#!/usr/bin/env bash
# campaign.sh [-n TOTAL] [-t SECONDS] SLOT COMMIT TARGET...
# One slot (a core's worth) of a fuzzing campaign, detached: the targets run one after
# another, each until it has TOTAL executions (default 10^7) on COMMIT's fast build
# (build.sh first), counted over its log's segments, so a campaign stopped and started
# again goes on where it was. A segment is one libFuzzer run with -runs= what is left, no
# time limit, -reduce_inputs=0 (no unit it added is ever deleted), over the persistent
# corpus corpus/TARGET (seeded from the repo's tests/fuzz/corpus at COMMIT, and topped up
# with its new seeds at every start), under `chrt -i 0 nice -n 19` (idle CPU only).
# Every REPLAY s (-t, default 1800) and when a target ends, its corpus is replayed
# through the ASan build (replay.sh).
#   crash, leak, UBSan report: the artifact goes to findings/TARGET/, is replayed
#       through the ASan build, and the slot moves on to its next target
#   timeout: libFuzzer's -timeout is wall-clock, and a paused (ctl.sh stop) or starved
#       fuzzer trips it, so the unit is re-run alone under a CPU-time limit (10 s); only
#       if it exceeds that too is it a finding, else the segment restarts
# ctl.sh stops, continues, kills and reports; count.sh counts. -f: run in the foreground.
set -eu
. "$(dirname "$0")/lib.sh"
self_dir=$(cd "$(dirname "$0")" && pwd)
self=$self_dir/$(basename "$0")

total=10000000 every=1800 fg=
args=("$@")
while getopts n:t:f opt; do
	case $opt in
	n) total=$OPTARG ;;
	t) every=$OPTARG ;;
	f) fg=1 ;;
	*) die "usage: campaign.sh [-n TOTAL] [-t REPLAY_SECONDS] SLOT COMMIT TARGET..." ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 3 ] || die "usage: campaign.sh [-n TOTAL] [-t REPLAY_SECONDS] SLOT COMMIT TARGET..."
slot=$1
commit=$(fuzz_commit "$2")
shift 2
bindir=$FUZZ_DIR/bin/$commit
for t in "$@"; do
	[ -x "$bindir/fast/$t" ] && [ -x "$bindir/asan/$t" ] ||
		die "no build of $t at $commit: tools/fuzz/build.sh $commit $t"
done
mkdir -p "$FUZZ_DIR/run" "$FUZZ_DIR/logs"
run=$FUZZ_DIR/run

if [ -z "$fg" ]; then
	fuzz_slots | grep -q "^$slot " && die "slot $slot is running (ctl.sh status)"
	# its own session and process group: ctl.sh signals the group
	setsid nohup "$self" -f "${args[@]}" >>"$FUZZ_DIR/logs/slot-$slot.log" 2>&1 </dev/null &
	echo "slot $slot: $* on $commit, log $FUZZ_DIR/logs/slot-$slot.log"
	exit 0
fi

echo $$ >"$run/$slot.pgid"
echo "$*" >"$run/$slot.targets"
echo "$commit" >"$run/$slot.commit"
stopping=
trap 'stopping=1' TERM INT
say() { echo "$(date -u +%FT%TZ) slot $slot: $*"; }

# the periodic replays of whichever target runs now
(
	trap 'exit 0' TERM
	while sleep "$every"; do
		t=$(cat "$run/$slot.target" 2>/dev/null) || continue
		"$self_dir/replay.sh" "$t" "$commit" >/dev/null 2>&1 || true
	done
) &
replayer=$!

# 0: the unit runs within the CPU limit alone (a wall-clock artefact); 1: a finding
rerun_alone() {
	local bin=$1 unit=$2 log=$3
	set +e
	prlimit --cpu=10 -- chrt -i 0 nice -n 19 "$bin" -timeout=0 -rss_limit_mb=2048 \
		"$unit" >>"$log" 2>&1
	local rc=$?
	set -e
	echo "== rerun $(basename "$unit") alone under a 10 s CPU limit: rc $rc" >>"$log"
	return $((rc != 0))
}

for t in "$@"; do
	echo "$t" >"$run/$slot.target"
	corpus=$FUZZ_DIR/corpus/$t
	findings=$FUZZ_DIR/findings/$t
	log=$FUZZ_DIR/logs/$t.log
	mkdir -p "$corpus" "$findings"
	seeds=$bindir/src/tests/fuzz/corpus/${t#fuzz_}
	[ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
	verdict=
	while [ -z "$stopping" ]; do
		done_n=$(fuzz_count "$t" "$commit")
		left=$((total - done_n))
		if [ "$left" -le 0 ]; then
			verdict="complete: $done_n executions"
			break
		fi
		say "$t: $done_n done, $left to go"
		echo "== segment $t $commit $(date -u +%FT%TZ) runs=$left" >>"$log"
		set +e
		# time ignores the group's SIGTERM (ctl.sh kill) and outlives the fuzzer, which
		# catches it, to write the segment's CPU time
		(
			trap '' TERM
			exec /usr/bin/time -a -o "$log" -f "== cpu %U %S" \
				chrt -i 0 nice -n 19 "$bindir/fast/$t" -runs="$left" \
				-reduce_inputs=0 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
				-artifact_prefix="$findings/" "$corpus" >>"$log" 2>&1
		)
		rc=$?
		set -e
		seg_tail=$(awk '/^== segment /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$log")
		unit=$(echo "$seg_tail" | sed -n 's/^.*Test unit written to \(.*\)$/\1/p' | tail -n 1)
		if [ -n "$stopping" ] || echo "$seg_tail" | grep -q 'run interrupted'; then
			echo "== end $(date -u +%FT%TZ) stopped (rc $rc)" >>"$log"
			break
		elif [ "$rc" -eq 0 ]; then
			echo "== end $(date -u +%FT%TZ) runs done" >>"$log"
		elif echo "$seg_tail" | grep -q 'libFuzzer: timeout' && [ -n "$unit" ]; then
			if rerun_alone "$bindir/fast/$t" "$unit" "$log"; then
				mkdir -p "$findings/wallclock"
				mv "$unit" "$findings/wallclock/"
				echo "== end $(date -u +%FT%TZ) wall-clock timeout, not a finding" >>"$log"
				say "$t: wall-clock timeout, ran alone within the CPU limit"
			else
				echo "== end $(date -u +%FT%TZ) FINDING timeout $unit" >>"$log"
				verdict="FINDING: timeout $unit"
				break
			fi
		else
			echo "== end $(date -u +%FT%TZ) FINDING rc $rc ${unit:-(no unit)}" >>"$log"
			verdict="FINDING: rc $rc ${unit:-(no unit written)}"
			if [ -n "$unit" ]; then
				"$bindir/asan/$t" -rss_limit_mb=2048 "$unit" >"$unit.asan.txt" 2>&1 || true
			fi
			break
		fi
	done
	[ -n "$stopping" ] && verdict=${verdict:-stopped}
	say "$t: ${verdict:-?}; $(fuzz_count "$t" "$commit") executions on $commit"
	[ -n "$stopping" ] && break
	"$self_dir/replay.sh" "$t" "$commit" || say "$t: the ASan replay FAILED"
done
kill "$replayer" 2>/dev/null || true
rm -f "$run/$slot.target"
say "done"
