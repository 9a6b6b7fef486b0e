# shellcheck shell=bash
# Shared by the campaign scripts (sourced). The campaign's state lives outside the repo:
#   $FUZZ_DIR/bin/COMMIT/{src,fast,asan}  sources (git archive) and the two builds
#   $FUZZ_DIR/corpus/TARGET/              the persistent corpus, seeded from the repo's
#   $FUZZ_DIR/logs/TARGET.log             libFuzzer's output, one segment per run
#   $FUZZ_DIR/logs/replay.log             the ASan replays
#   $FUZZ_DIR/findings/TARGET/            crash-, leak-, timeout- and slow-unit files
#   $FUZZ_DIR/run/SLOT.pgid               process group of each running slot
FUZZ_DIR=${FUZZ_DIR:-/work/notes/fuzz-s11}
REPO=${REPO:-$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)}

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

# A commit's short name (the directory under bin/), or die.
fuzz_commit() {
	git -C "$REPO" rev-parse --short=7 --verify "$1^{commit}" 2>/dev/null ||
		die "no such commit: $1"
}

# Executions of TARGET over its log's segments; with a commit, only that commit's. A
# segment's count is libFuzzer's final stat::number_of_executed_units, or, when it was
# killed before printing it, its last "#N" status line. verbose: one line per segment on
# stderr (commit, start-end, executions, CPU seconds, executions per CPU-second, how it
# ended) and the CPU seconds of the counted segments after the sum on stdout.
fuzz_count() {
	local target=$1 commit=${2:-} verbose=${3:-}
	local log=$FUZZ_DIR/logs/$target.log

	[ -f "$log" ] || {
		echo 0
		return
	}
	awk -v want="$commit" -v verbose="$verbose" '
	function close_seg() {
		if (!inseg)
			return
		n = final != "" ? final : last
		if (want == "" || want == seg_commit) {
			total += n
			cpu_total += cpu
		}
		if (verbose)
			printf "%s %s %s..%s %d execs %.0f s CPU %s/s %s\n", seg_target,
			       seg_commit, seg_start, (seg_end == "" ? "(running)" : seg_end), n,
			       cpu, (cpu > 0 ? sprintf("%.0f", n / cpu) : "-"), seg_how \
			       > "/dev/stderr"
		inseg = 0
	}
	/^== segment / {
		close_seg()
		inseg = 1; seg_target = $3; seg_commit = $4; seg_start = $5
		seg_end = ""; seg_how = ""; final = ""; last = 0; cpu = 0
		next
	}
	/^== cpu / { cpu = $3 + $4; next }
	/^== end / { seg_end = $3; seg_how = $0; sub(/^== end [^ ]* /, "", seg_how); next }
	/^stat::number_of_executed_units:/ { final = $2 + 0; next }
	/^#[0-9]+[ \t]/ { last = substr($1, 2) + 0 }
	END {
		close_seg()
		if (verbose)
			printf "%d %.0f\n", total, cpu_total
		else
			print total + 0
	}
	' "$log"
}

# The commit of TARGET's last segment (what its corpus was last fuzzed with), or nothing.
fuzz_last_commit() {
	local log=$FUZZ_DIR/logs/$1.log

	[ -f "$log" ] && awk '/^== segment / { c = $4 } END { print c }' "$log"
}

# Live process groups of running slots: "SLOT PGID" lines.
fuzz_slots() {
	local f pg

	for f in "$FUZZ_DIR"/run/*.pgid; do
		[ -f "$f" ] || continue
		pg=$(cat "$f")
		if kill -0 -- "-$pg" 2>/dev/null; then
			echo "$(basename "$f" .pgid) $pg"
		fi
	done
}
