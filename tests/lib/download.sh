#!/usr/bin/env bash
# Checks on transfers through a tunnel: the paced downloads (tests/lib/pace.py) of the
# survival tests, and parallel uploads (tests/lib/tcpio.py). Source it after
# tests/lib/netns.sh, set $want (pace.py sha SIZE) and fail=0, then:
#   $PACE                  tests/lib/pace.py
#   udp_sports NS PORT IP  the local ports of NS's UDP sockets from IP towards PORT, a line each
#   udp_sport NS PORT IP   the first of them
#   wait_held FILE         until the downloader stopped reading at its HOLD mark
#   check_dl FILE WHAT MAX_GAP_MS   sha256, size and longest stall of a finished download
# A check that fails prints a FAIL line and sets fail=1.

# shellcheck disable=SC2034 # the tests that source this use it
PACE=$NETNS_TOP/tests/lib/pace.py

udp_sports() {
	in_ns "$1" ss -Hun "dport = :$2" |
		awk -v ip="$3" '{ for (i = 1; i <= NF; i++) if (index($i, ip ":") == 1) {
			print substr($i, length(ip) + 2); next } }'
}
udp_sport() { udp_sports "$@" | head -1; }

# Bounded (20 s): the change a step makes then happens mid-stream however slow the
# machine, and FILE.go resumes the download.
wait_held() {
	for _ in $(seq 1 400); do
		[ -e "$1.held" ] && return 0
		sleep 0.05
	done
	echo "FAIL: $1: never held after 20 s"
	fail=1
}

# MAX_GAP_MS empty: the stall is printed, not checked.
check_dl() {
	local sha n gap
	read -r sha n gap <"$1" 2>/dev/null || { echo "FAIL: $2: no result"; fail=1; return; }
	if [ "$sha" = "$want" ]; then
		echo "  $2: $n bytes, sha256 equal, longest stall $gap ms"
	else
		echo "FAIL: $2: $n bytes, sha256 differs (stream reset?)"
		fail=1
	fi
	if [ -n "$3" ] && [ "$gap" -gt "$3" ]; then
		echo "FAIL: $2: stalled $gap ms, want <= $3"
		fail=1
	fi
}

# upload4 PORT SIZE DIR: 4 connections at once from $NS_A to 127.0.0.1:PORT, SIZE bytes
# each (tcpio.py send, seeds 1-4); a tcpio sink writes its .sha files into DIR. Each
# upload must arrive intact (sha256 and size) within 10 s of the senders ending.
upload4() {
	local port=$1 size=$2 dir=$3 k p sent pids=()
	for k in 1 2 3 4; do
		in_a timeout 120 python3 "$TCPIO" send 127.0.0.1 "$port" "$size" "$k" \
			>"$dir/sent$k" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || true; done
	for _ in $(seq 1 100); do
		[ "$(ls "$dir"/*.sha 2>/dev/null | wc -l)" -ge 4 ] && break
		sleep 0.1
	done
	for k in 1 2 3 4; do
		sent=$(cat "$dir/sent$k")
		grep -q "^$sent $size" "$dir"/*.sha 2>/dev/null ||
			{ echo "FAIL: upload $k: no intact copy arrived (sent $sent)"; fail=1; }
	done
}
