#!/usr/bin/env bash
# --metrics scraped by a real Prometheus (Debian's package), in the test's namespace.
#
#   [ A ] tcpio send -> kcpx client :8388 ==udp== [ B ] kcpx up $IF_B server :4000 -> sink
#                                                       --metrics 127.0.0.1:9100
#                                                       prometheus 127.0.0.1:9090 (1 s scrapes)
#
# Checks: promtool check metrics on /metrics; the XDP counters are there; Prometheus's
# HTTP API sees kcpx_bytes_received_total move by the transfer's size; /healthz is 200;
# ten connections that never send (a stuck scraper) do not stall the tunnel (a transfer
# runs meanwhile), are dropped at their 5 s deadline, and /metrics answers again; a
# client whose server is silent answers /healthz with 503 and the reason.
set -eu
. "$(dirname "$0")/../lib/netns.sh"
work_dir metrics
command -v prometheus >/dev/null || { echo "SKIP: no prometheus (make deps)"; exit 1; }
SIZE=$((8 << 20))
FLAGS="--crypt aes --key metrics-test --mode fast3"
fail=0

wait_for() { # wait_for SECONDS CMD...: until CMD succeeds
	local t=$1
	shift
	for _ in $(seq 1 $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}

netns_pair
in_b python3 "$TCPIO" sink 9001 "$work" & track_pid $!
in_b "$KCPX" up "$IF_B" server -l :4000 -t 127.0.0.1:9001 $FLAGS --metrics 127.0.0.1:9100 \
	--log "$work/server.log" & track_pid $!
in_a "$KCPX" client -l 127.0.0.1:8388 -r "$IP_B:4000" $FLAGS --log "$work/client.log" &
track_pid $!
wait_tcp_port "$NS_B" 9100
wait_tcp_port "$NS_A" 8388

cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: kcpx
    static_configs:
      - targets: ['127.0.0.1:9100']
YML
promtool check config "$work/prometheus.yml" >/dev/null || { echo "FAIL: prometheus.yml"; exit 1; }
in_b prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
	--web.listen-address=127.0.0.1:9090 --log.level=warn >"$work/prometheus.log" 2>&1 &
track_pid $!

query() { # query EXPR: the first result's value, or nothing
	in_b curl -sf --max-time 10 -G 'http://127.0.0.1:9090/api/v1/query' --data-urlencode "query=$1" |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
has_value() { [ -n "$(query "$1")" ]; }
wait_for 60 has_value 'kcpx_bytes_received_total' || {
	echo "FAIL: Prometheus never scraped kcpx"; tail -20 "$work/prometheus.log"; exit 1; }
v0=$(query 'kcpx_bytes_received_total')
echo "Prometheus sees kcpx_bytes_received_total = $v0 before the transfer"

sent=$(in_a timeout 120 python3 "$TCPIO" send 127.0.0.1 8388 "$SIZE" 3)
wait_for 30 test -e "$work/0.sha" || { echo "FAIL: transfer did not finish"; fail=1; }
[ "$(cut -d' ' -f1 "$work/0.sha" 2>/dev/null)" = "$sent" ] || { echo "FAIL: data differs"; fail=1; }
moved() { python3 -c "import sys; sys.exit(0 if float('$(query kcpx_bytes_received_total)' or 0) >= $v0 + $SIZE else 1)"; }
if wait_for 30 moved; then
	echo "Prometheus sees kcpx_bytes_received_total = $(query kcpx_bytes_received_total) after $SIZE bytes"
else
	echo "FAIL: kcpx_bytes_received_total did not move by $SIZE in Prometheus ($(query kcpx_bytes_received_total))"
	fail=1
fi
[ "$(query 'up{job="kcpx"}')" = 1 ] || { echo "FAIL: Prometheus says the target is down"; fail=1; }

in_b curl -sf --max-time 10 http://127.0.0.1:9100/metrics >"$work/metrics.txt"
promtool check metrics <"$work/metrics.txt" || { echo "FAIL: promtool check metrics"; fail=1; }
grep -q '^kcpx_xdp_' "$work/metrics.txt" || { echo "FAIL: no XDP counters under kcpx up"; fail=1; }
grep -q '^kcpx_session_bytes_in_total{peer="' "$work/metrics.txt" || { echo "FAIL: no session series"; fail=1; }
grep -q '^process_start_time_seconds ' "$work/metrics.txt" || { echo "FAIL: no start time"; fail=1; }
[ "$(in_b curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:9100/healthz)" = 200 ] ||
	{ echo "FAIL: /healthz is not 200"; fail=1; }

# a stuck scraper: ten connections that never send a byte
# they hang until the transfer below is checked (a file says so; bounded, 120 s), not for
# a fixed time that a slow transfer could outlast
in_b python3 - "$work/stuck.done" >"$work/stuck.log" 2>&1 <<'PY' &
import os, socket, sys, time
conns = [socket.create_connection(("127.0.0.1", 9100)) for _ in range(10)]
print("open", flush=True)
end = time.time() + 120
while not os.path.exists(sys.argv[1]) and time.time() < end:
    time.sleep(0.1)
PY
stuck=$!
track_pid $stuck
wait_for 30 grep -q open "$work/stuck.log"
t0=$SECONDS
sent=$(in_a timeout 60 python3 "$TCPIO" send 127.0.0.1 8388 $((1 << 20)) 5)
wait_for 30 test -e "$work/1.sha" || { echo "FAIL: tunnel stalled while a scraper hung"; fail=1; }
[ "$(cut -d' ' -f1 "$work/1.sha" 2>/dev/null)" = "$sent" ] || { echo "FAIL: data differs"; fail=1; }
echo "1 MiB through the tunnel in $((SECONDS - t0)) s while 10 scraper connections hung"
kill -0 $stuck 2>/dev/null || { echo "FAIL: the stuck scraper ended before the transfer did"; fail=1; }
ok_again() { in_b curl -sf --max-time 10 http://127.0.0.1:9100/metrics | grep -q '^kcpx_metrics_timeouts_total [1-9]'; }
# the scraper still holds its connections: only the daemon's 5 s deadline can end them
# (released after, or a fast transfer would let them close first and nothing time out)
wait_for 30 ok_again || { echo "FAIL: /metrics did not come back after the deadline"; fail=1; }
touch "$work/stuck.done"
in_b curl -sf --max-time 10 http://127.0.0.1:9100/metrics | grep '^kcpx_metrics_'

# /healthz is 503 with a reason while no session hears from its peer: a client whose
# server does not answer (nothing listens on that port), once a connection opened a session
in_a "$KCPX" client -l 127.0.0.1:8399 -r "$IP_B:4999" $FLAGS --metrics 127.0.0.1:9102 \
	--log "$work/client-dead.log" & track_pid $!
wait_tcp_port "$NS_A" 9102
wait_tcp_port "$NS_A" 8399
[ "$(in_a curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:9102/healthz)" = 200 ] ||
	{ echo "FAIL: /healthz of a client without sessions is not 200"; fail=1; }
in_a timeout 30 python3 "$TCPIO" send 127.0.0.1 8399 1000 1 >/dev/null 2>&1 &
track_pid $!
unhealthy() { in_a curl -s --max-time 10 http://127.0.0.1:9102/healthz | grep -q "no session heard from its peer"; }
wait_for 15 unhealthy || { echo "FAIL: /healthz does not say the session is dead"; fail=1; }
code=$(in_a curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:9102/healthz)
echo "/healthz of a client whose server is silent: $code"
[ "$code" = 503 ] || { echo "FAIL: /healthz is $code, not 503"; fail=1; }
[ $fail -ne 0 ] && tail -n 20 "$work/server.log" "$work/prometheus.log"
exit $fail
