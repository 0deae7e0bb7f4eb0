#!/usr/bin/env bash
# Overload and soak of docs/reliability.md, on 127.0.0.1 only, bounded in
# time. Overload: wrk at CONNECTIONS (64) against POST /resize, far above
# the gate (2 slots, 16 waiting places by default), for DURATION seconds:
# the service must shed with 503 (or 429: all from one client, over its
# MAX_PER_CLIENT) + Retry-After, never 500, never time out.
# Soak: wrk at concurrency 8 for SOAK seconds (600), sampling the server's
# memory (the server's and its workers', PSS) every 10 s into $CACHE/soak.csv and a plot, $CACHE/soak.svg.
#
#   ./scripts/overload.sh                  # both
#   SOAK=0 ./scripts/overload.sh           # overload only
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-64}
SOAK=${SOAK:-600}
PORT=${PORT:-18092}
CACHE=${CACHE:-.cache/overload}
URL="http://127.0.0.1:$PORT/resize?width=800&quality=80"
mkdir -p "$CACHE"
command -v wrk >/dev/null || { echo "overload: wrk is needed (apt-get install wrk)" >&2; exit 1; }
go build -trimpath -o bin/server ./cmd/server
photo=testdata/ladybird.jpg   # 2560x1600, 352 KB: many requests in a short run

. scripts/server.sh
# (A failed kill of a wrk that has ended must not end the trap under set -e
# before the server is stopped: it left servers running.)
trap 'if [ -n "${wrk_pid:-}" ]; then kill "$wrk_pid" 2>/dev/null || true; fi; stop_server' EXIT

echo "== overload: $CONNECTIONS connections for ${DURATION}s ($(nproc) CPUs)"
start_server
BODY="$photo" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 30s -s scripts/wrk-post.lua "$URL" >"$CACHE/wrk-overload.txt"
grep -E "Requests/sec|Non-2xx|Socket errors|RESULT" "$CACHE/wrk-overload.txt" || true
kill -0 "$server_pid" 2>/dev/null || { echo "FAIL: the server died"; tail -30 "$CACHE/server.log"; exit 1; }
ok=$(metric 'resizer_http_requests_total{method="POST",route="/resize",status="200"}')
shed=$(metric 'resizer_http_requests_total{method="POST",route="/resize",status="503"}')
shed429=$(metric 'resizer_http_requests_total{method="POST",route="/resize",status="429"}')
fivehundred=$(metric 'resizer_http_requests_total{method="POST",route="/resize",status="500"}')
echo "answered=${ok:-0} shed_503=${shed:-0} shed_429=${shed429:-0} status_500=${fivehundred:-0}"
# p99 of the answered requests, from the server's histogram: the smallest
# bucket bound that holds 99 % of them.
curl -s "http://127.0.0.1:$PORT/metrics" | awk -v total="${ok:-0}" '
  /^resizer_http_request_duration_seconds_bucket\{route="\/resize",status="200",le="/ {
    match($0, /le="[^"]+"/); le = substr($0, RSTART+4, RLENGTH-5)
    if (!done && $2 >= 0.99 * total) { print "p99_answered_seconds<=" le; done = 1 } }'
stop_server

[ "$SOAK" -gt 0 ] || exit 0
echo "== soak: 8 connections for ${SOAK}s, memory (PSS) every 10 s"
start_server
BODY="$photo" wrk -t2 -c8 -d"${SOAK}s" --timeout 30s -s scripts/wrk-post.lua "$URL" >"$CACHE/wrk-soak.txt" &
wrk_pid=$!
echo "seconds,pss_kib,requests" >"$CACHE/soak.csv"
t=0
while kill -0 "$wrk_pid" 2>/dev/null; do
  kill -0 "$server_pid" 2>/dev/null || { echo "FAIL: the server died at ${t}s"; grep -v '^{' "$CACHE/server.log" | head -20; exit 1; }
  echo "$t,$(server_kib),$(metric 'resizer_http_requests_total{method="POST",route="/resize",status="200"}')" >>"$CACHE/soak.csv"
  sleep 10; t=$((t + 10))
done
grep -E "Requests/sec|Non-2xx|Socket errors|RESULT" "$CACHE/wrk-soak.txt" || true
echo "peak_pss_kib=$(awk -F, 'NR > 1 && $2 > m {m = $2} END {print m}' "$CACHE/soak.csv") (of the samples)"
cat "$CACHE/soak.csv"
# A plain SVG plot of the memory against time.
awk -F, 'NR > 1 { t[NR] = $1; r[NR] = $2 / 1024; if ($2 / 1024 > max) max = $2 / 1024; n = NR; last = $1 }
  END {
    w = 640; h = 240; top = max * 1.2
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", w + 60, h + 40
    printf "<rect x=\"50\" y=\"10\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", w, h
    printf "<text x=\"5\" y=\"15\">%d MiB</text><text x=\"5\" y=\"%d\">0</text>\n", top, h + 10
    printf "<text x=\"50\" y=\"%d\">0 s</text><text x=\"%d\" y=\"%d\">%d s</text>\n", h + 25, w + 20, h + 25, last
    printf "<polyline fill=\"none\" stroke=\"#c33\" stroke-width=\"2\" points=\""
    for (i = 2; i <= n; i++) printf "%.1f,%.1f ", 50 + w * t[i] / last, 10 + h - h * r[i] / top
    printf "\"/>\n<text x=\"60\" y=\"28\">memory of the server and its workers (PSS, MiB), POST /resize at concurrency 8</text>\n</svg>\n" }' \
  "$CACHE/soak.csv" >"$CACHE/soak.svg"
echo "plot: $CACHE/soak.svg"
