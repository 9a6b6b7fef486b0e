#!/usr/bin/env bash
# make check: every test kcpx has, in order, each one counted. The last line is the
# plain summary "N passed, N failed" that CI reads.
#
#   format-check -> build -> unit -> unit (SAN=1) -> bpf (BPF_PROG_RUN) -> fuzz smoke
#   -> selftests (netns) -> packaging (install, man, units, .deb) -> interop (stock kcptun)
#   -> bench smoke
#
# KCPX_TESTS=pattern limits the run to tests whose name matches (grep -E).
set -u
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}
pass=0
fail=0
failed_names=()
filter=${KCPX_TESTS:-.}

run() { # run NAME TIMEOUT CMD...
	local name=$1 tmo=$2
	shift 2
	echo "$name" | grep -qE "$filter" || return 0
	local log
	log=$(mktemp /tmp/kcpx-test.XXXXXX)
	local t0=$SECONDS
	if timeout --kill-after=10 "$tmo" "$@" >"$log" 2>&1; then
		pass=$((pass + 1))
		printf 'PASS  %-48s %4ds\n' "$name" $((SECONDS - t0))
	else
		local rc=$?
		fail=$((fail + 1))
		failed_names+=("$name")
		printf 'FAIL  %-48s %4ds (exit %d)\n' "$name" $((SECONDS - t0)) "$rc"
		# the lines that say what failed first (a test may dump its logs after them)
		grep -m 10 -E '(^|[^A-Za-z])(FAIL|FAILED|error:)' "$log" | sed 's/^/      ! /'
		tail -n 40 "$log" | sed 's/^/      | /'
	fi
	rm -f "$log"
}

run format-check 120 make --no-print-directory format-check
run build 900 make --no-print-directory -j"$JOBS"
run build-san 900 make --no-print-directory -j"$JOBS" SAN=1 build-san/libkcpxcore.a unit-bins

for t in build/tests/unit/test_*; do
	[ -x "$t" ] && run "unit/$(basename "$t")" 300 "$t"
done
for t in build-san/tests/unit/test_*; do
	[ -x "$t" ] && run "unit-san/$(basename "$t")" 600 "$t"
done
for t in build/tests/bpf/test_*; do
	[ -x "$t" ] && run "bpf/$(basename "$t")" 300 "$t"
done
if make --no-print-directory -j"$JOBS" fuzz >/tmp/kcpx-fuzz-build.log 2>&1; then
	for t in build/tests/fuzz/fuzz_*; do
		[ -x "$t" ] || continue
		n=$(basename "$t")
		corpus=tests/fuzz/corpus/${n#fuzz_}
		run "fuzz/$n" 120 ./tests/fuzz/run-fuzz.sh "$t" "$corpus" 20
	done
else
	run "fuzz/build" 10 sh -c 'tail -40 /tmp/kcpx-fuzz-build.log; exit 1'
fi
for t in tests/selftests/test-*.sh; do
	[ -x "$t" ] && run "selftest/$(basename "$t" .sh)" 900 "$t"
done
for t in tests/packaging/test-*.sh; do
	[ -x "$t" ] && run "packaging/$(basename "$t" .sh)" 300 "$t"
done
for t in tests/interop/test-*.sh; do
	[ -x "$t" ] && run "interop/$(basename "$t" .sh)" 900 "$t"
done
for t in tools/tests/test-*.sh; do
	[ -x "$t" ] && run "tools/$(basename "$t" .sh)" 600 "$t"
done

if [ ${#failed_names[@]} -gt 0 ]; then
	echo "failed: ${failed_names[*]}"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
