#!/usr/bin/env bash
# Two kcpx ends configured differently say why in their logs (kcptun's most common
# support question is a tunnel that opens streams and closes them without a word).
#
#   [ A ] kcpx client :8381 --key other ==udp== [ B ] kcpx server :4001 --key right
#         kcpx client :8382 --nocomp    ==udp==       kcpx server :4002
#         kcpx client :8383 --smuxver 1 ==udp==       kcpx server :4003 --smuxver 2
#         kcpx client :8384 --ds 5 --ps 2 ==udp==     kcpx server :4004 --ds 10 --ps 3
#                    (both --proto kcptun)
#         kcpx client :8385 --nocomp    ==udp==       kcpx server :4005 (both --proto kcptun)
#
# Checks: wrong key: the server reports datagrams failing decryption, the peer that sent
# them and --key/--crypt,
# once (rate-limited) although dozens fail; the client reports no answer naming them;
# --nocomp (kcpx's protocol and kcptun's format) and --smuxver: the server's close line names
# the option, and so does the client's, within 2 s of it (the server's parting frame fails
# the client's parser; before, the client learnt at its keepalive timeout), and the server's
# --key/--crypt hint stays silent about the closed session's late packets; --ds/--ps in kcptun's
# format: both ends name the peer's ratio and ours (data still flows: each decoder learns
# the other's ratio).
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir mismatch
fail=0

netns_pair
in_b python3 "$TCPIO" echo 9001 & track_pid $!
i=0
while IFS='|' read -r sflags cflags; do
	i=$((i + 1))
	# shellcheck disable=SC2086
	in_b "$KCPX" server -l ":400$i" -t 127.0.0.1:9001 --key right $sflags \
		--log "$work/s$i.log" & track_pid $!
	# shellcheck disable=SC2086
	in_a "$KCPX" client -l "127.0.0.1:838$i" -r "$IP_B:400$i" --key right $cflags \
		--log "$work/c$i.log" & track_pid $!
done <<'CASES'
--crypt aes|--crypt aes --key other
--crypt aes|--nocomp
--smuxver 2|--smuxver 1
--proto kcptun --ds 10 --ps 3|--proto kcptun --ds 5 --ps 2
--proto kcptun --crypt aes|--proto kcptun --crypt aes --nocomp
CASES
for i in 1 2 3 4 5; do
	wait_udp_port "$NS_B" "400$i"
	wait_tcp_port "$NS_A" "838$i"
	# case 4 needs a few FEC groups for the decoder to learn the peer's ratio
	in_a timeout 30 python3 "$TCPIO" multi 127.0.0.1 "838$i" 1 $((i == 4 ? 400000 : 1000)) \
		>"$work/m$i.out" 2>&1 &
	track_pid $!
done

wait_line "$work/s1.log" "datagrams failed decryption or their tag since start, the last from $IP_A:[0-9]+: likely cause: the other end's --key or --crypt differs" || fail=1
wait_line "$work/c1.log" "no answer from $IP_B:4001 in 5 s: likely cause: .*--key or --crypt differs" || fail=1
wait_line "$work/s2.log" "closed: corrupt compressed stream from peer \(likely cause: the ends disagree on --nocomp" || fail=1
wait_line "$work/s4.log" "its FEC is --datashard 5 --parityshard 2, ours 10/3: likely cause: the ends disagree on --datashard/--parityshard" || fail=1
wait_line "$work/c4.log" "its FEC is --datashard 10 --parityshard 3, ours 5/2: likely cause" || fail=1
wait_line "$work/m4.out" " 0 errors" || { echo "FAIL: data lost over the ds/ps mismatch"; fail=1; }
wait_line "$work/s3.log" "closed: smux protocol error from peer \(likely cause: the ends disagree on --smuxver" || fail=1
wait_line "$work/s5.log" "closed: corrupt compressed stream from peer \(likely cause: the ends disagree on --nocomp" || fail=1
# the client names it too, promptly: its line no more than 8 s after the server's (the
# server's parting NOP tells it at once; without it the keepalive timeout, 30 s, would),
# with room for a busy machine
for i in 2 3 5; do
	wait_line "$work/c$i.log" "closed: smux protocol error from peer \(likely cause: the ends disagree on --smuxver, or on --nocomp" || fail=1
	ts=$(grep -m1 "likely cause: the ends disagree" "$work/s$i.log" | cut -d' ' -f2)
	tc=$(grep -m1 "likely cause: the ends disagree" "$work/c$i.log" | cut -d' ' -f2)
	if [ -n "$ts" ] && [ -n "$tc" ]; then
		d=$(($(date -d "$tc" +%s) - $(date -d "$ts" +%s)))
		echo "case $i: the client named the cause $d s after the server"
		[ "$d" -le 8 ] || { echo "FAIL: case $i: the client learnt $d s after the server"; fail=1; }
	fi
done
# the late packets of the sessions a --nocomp mismatch closed fail their check at the
# server (the session is gone): not a reason to blame --key or --crypt
for i in 2 5; do
	! grep -q "failed decryption" "$work/s$i.log" ||
		{ echo "FAIL: case $i: the --key/--crypt hint after a --nocomp mismatch"; fail=1; }
done
# the rate limit: once a minute (a slow run may last past the minute: then lines 60 s apart)
n=$(grep -c "failed decryption" "$work/s1.log" || true)
gaps=$(grep "failed decryption" "$work/s1.log" | cut -d' ' -f1,2 |
	while read -r day tod; do date -d "${day//\//-} $tod" +%s; done |
	awk 'NR > 1 && $1 - prev < 59 { bad++ } { prev = $1 } END { print bad + 0 }')
[ "$n" -ge 1 ] && [ "$gaps" = 0 ] ||
	{ echo "FAIL: the failed-decryption line came $n times, $gaps within a minute of the one before (rate limit: once a minute)"; fail=1; }
bad=$(grep -oE '^[^ ]+ [^ ]+ kcpx warn: [0-9]+' "$work/s1.log" | grep -oE '[0-9]+$' | head -1)
echo "wrong key: the server saw $bad failing datagrams and said so once"
grep -h "likely cause" "$work"/*.log | cut -c21-
[ $fail -ne 0 ] && tail -n 5 "$work"/m*.out
exit $fail
