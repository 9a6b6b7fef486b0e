#!/usr/bin/env bash
# ctl.sh stop|cont|kill|status: the running campaign slots (campaign.sh), each its own
# process group (the slot's loop, its fuzzer, its periodic replay).
#   stop    SIGSTOP every slot's group: no CPU at all (for make check, make bench)
#   cont    SIGCONT them again (the unit a fuzzer was on may then trip libFuzzer's
#           wall-clock -timeout: campaign.sh re-runs it alone under a CPU-time limit)
#   kill    end the slots (the fuzzers print their final counts), then replay each
#           slot's current target through the ASan build (replay.sh)
#   status  each slot: state, target, executions so far on its commit
set -eu
. "$(dirname "$0")/lib.sh"

cmd=${1:-status}
slots=$(fuzz_slots)
case $cmd in
stop | cont)
	sig=$([ "$cmd" = stop ] && echo STOP || echo CONT)
	echo "$slots" | while read -r slot pg; do
		[ -n "$slot" ] || continue
		kill -"$sig" -- "-$pg" && echo "slot $slot (group $pg): SIG$sig"
	done
	;;
kill)
	echo "$slots" | while read -r slot pg; do
		[ -n "$slot" ] || continue
		target=$(cat "$FUZZ_DIR/run/$slot.target" 2>/dev/null || true)
		commit=$(cat "$FUZZ_DIR/run/$slot.commit")
		kill -CONT -- "-$pg" 2>/dev/null || true
		kill -TERM -- "-$pg" 2>/dev/null || true
		for _ in $(seq 60); do
			kill -0 -- "-$pg" 2>/dev/null || break
			sleep 1
		done
		if kill -0 -- "-$pg" 2>/dev/null; then
			kill -KILL -- "-$pg" 2>/dev/null || true
			echo "slot $slot: killed (SIGKILL after 60 s)"
		else
			echo "slot $slot: ended"
		fi
		if [ -n "$target" ]; then
			"$(dirname "$0")/replay.sh" "$target" "$commit" || true
		fi
	done
	;;
status)
	[ -n "$slots" ] || echo "no slot running"
	echo "$slots" | while read -r slot pg; do
		[ -n "$slot" ] || continue
		target=$(cat "$FUZZ_DIR/run/$slot.target" 2>/dev/null || echo -)
		commit=$(cat "$FUZZ_DIR/run/$slot.commit")
		states=$(ps -o stat= -g "$pg" | cut -c1 | sort | uniq -c | tr -s ' \n' ' ')
		n=$([ "$target" = - ] && echo - || fuzz_count "$target" "$commit")
		# the running segment's CPU so far (count.sh has it once the segment ends)
		cpu=-
		fpid=$(pgrep -g "$pg" -x "$target" | head -n 1 || true)
		if [ -n "$fpid" ]; then
			cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) / hz }' \
				"/proc/$fpid/stat")
		fi
		echo "slot $slot (group $pg; states:$states): $target on $commit, $n executions" \
			"(running segment: ${cpu} s CPU); queue: $(cat "$FUZZ_DIR/run/$slot.targets")"
	done
	;;
*)
	die "usage: ctl.sh stop|cont|kill|status"
	;;
esac
