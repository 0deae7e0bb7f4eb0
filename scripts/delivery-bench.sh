#!/usr/bin/env bash
# Delivery by URL (docs/benchmarks.md), in one run on one machine:
#   hit:  one signed URL of a derived JPEG of about 40 KB, served from the
#         derived cache in the local store (wrk at concurrency 2 and 32);
#   miss: signed URLs that are each asked once (wrk-paths.lua), so that
#         every request renders, against POST /resize of the same original
#         to the same size, in alternating rounds at concurrency 2;
#   imgproxy (when IMGPROXY_BIN names a v4 binary): the same URL from the
#         same file, which it renders on every request.
# Only 127.0.0.1 is used; each wrk run lasts DURATION seconds (default 8).
#
#   IMGPROXY_BIN=/path/to/imgproxy ./scripts/delivery-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-5}
PORT=${PORT:-18098}
IMGPROXY_PORT=${IMGPROXY_PORT:-18099}
CACHE=${CACHE:-.cache/delivery-bench}
SIGNING_KEY=bench-url-signing-key-0123456789abcdef
ORIGINAL=testdata/ladybird.jpg # 2560x1600, 352 KB
OPTIONS="quality=80&width=880"  # about 40 KB out
command -v wrk >/dev/null || { echo "delivery-bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }
rm -rf "$CACHE/data" && mkdir -p "$CACHE/data"
go build -trimpath -o bin/server ./cmd/server
go run ./scripts/signurls "$SIGNING_KEY" uploads/bench/ladybird.jpg 4000 880 80 >"$CACHE/paths.txt"
. scripts/server.sh

imgproxy_pid=""
stop_imgproxy() { if [ -n "$imgproxy_pid" ]; then kill "$imgproxy_pid" 2>/dev/null || true; wait "$imgproxy_pid" 2>/dev/null || true; imgproxy_pid=""; fi; }
trap 'stop_server; stop_imgproxy' EXIT

start_server URL_SIGNING_KEYS="$SIGNING_KEY"
base="http://127.0.0.1:$PORT"
curl -fsS --data-binary @"$ORIGINAL" "$base/uploads?key=bench/ladybird.jpg" >/dev/null
hit=$(URL_SIGNING_KEYS="$SIGNING_KEY" ./bin/server sign uploads/bench/ladybird.jpg "$OPTIONS")
# The first request renders; the write to the cache follows the answer.
for _ in $(seq 1 50); do
  curl -fsS -D "$CACHE/hit.headers" -o "$CACHE/hit.jpg" "$base$hit"
  grep -qi '^cache-status: resizer; hit' "$CACHE/hit.headers" && break
  sleep 0.1
done
grep -qi '^cache-status: resizer; hit' "$CACHE/hit.headers" || { echo "delivery-bench: never a hit" >&2; exit 1; }
size=$(stat -c %s "$CACHE/hit.jpg")

if [ -n "${IMGPROXY_BIN:-}" ]; then
  IMGPROXY_BIND=127.0.0.1:$IMGPROXY_PORT IMGPROXY_LOCAL_FILESYSTEM_ROOT="$PWD/testdata" IMGPROXY_WORKERS="$(nproc)" \
    IMGPROXY_LOG_LEVEL=warn "$IMGPROXY_BIN" >"$CACHE/imgproxy.log" 2>&1 &
  imgproxy_pid=$!
  for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$IMGPROXY_PORT/health" && break; sleep 0.1; done
fi
imgproxy_url="http://127.0.0.1:$IMGPROXY_PORT/insecure/rs:fit:880:0/q:80/plain/local:///ladybird.jpg"

# measure NAME CONNECTIONS ARGS...: one wrk run; prints "req/s p50 p99 non2xx".
measure() {
  local name=$1 c=$2; shift 2
  sleep 2 # what the previous run left in flight
  THREADS=2 wrk -t2 -c"$c" -d"${DURATION}s" --timeout 30s "$@" >"$CACHE/$name.txt" 2>&1
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' "$CACHE/$name.txt")
  p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' "$CACHE/$name.txt")
  p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' "$CACHE/$name.txt")
  bad=$(awk '/Non-2xx/ {print $NF}' "$CACHE/$name.txt")
  grep -q "out of paths" "$CACHE/$name.txt" && echo "delivery-bench: $name asked for a path twice" >&2
  echo "$rps ${p50} ${p99} ${bad:-0}"
}
row() { read -r rps p50 p99 bad <<<"$2"; printf '| %s | %s | %s ms | %s ms | %s |\n' "$1" "$rps" "$p50" "$p99" "$bad"; }

echo "== $(date -u +%FT%TZ) $(nproc) CPUs, $(go env GOVERSION), libvips $(pkg-config --modversion vips); ${DURATION}s each"
echo "hit: $hit ($size bytes, $(grep -i '^content-type' "$CACHE/hit.headers" | tr -d '\r'))"
printf '| run | requests/s | p50 | p99 | non-2xx |\n|---|---|---|---|---|\n'
# The machine's own noise: the cheapest route there is, at the same load.
row "control: GET /healthz, concurrency 2" "$(measure healthz-c2 2 -s scripts/wrk-get.lua "$base/healthz")"
row "hit, concurrency 2" "$(measure hit-c2 2 -s scripts/wrk-get.lua "$base$hit")"
row "hit, concurrency 32" "$(measure hit-c32 32 -s scripts/wrk-get.lua "$base$hit")"
lines=$(wc -l <"$CACHE/paths.txt")
per=$((lines / ROUNDS))
ratios=""
for r in $(seq 1 "$ROUNDS"); do
  sed -n "$(((r - 1) * per + 1)),$((r * per))p" "$CACHE/paths.txt" >"$CACHE/paths-r$r.txt"
  # POST /resize does the misses' image work: the same original, with the
  # same options in the same order.
  sed 's|^/img/[^/]*/\([^/]*\)/.*|/resize?\1|' "$CACHE/paths-r$r.txt" >"$CACHE/posts-r$r.txt"
  sed -i "s|^|$base|" "$CACHE/paths-r$r.txt"
  miss() { m=$(PATHS="$CACHE/paths-r$r.txt" measure miss-r$r 2 -s scripts/wrk-paths.lua "$base/"); row "round $r: miss (render, kept), concurrency 2" "$m"; }
  resize() { p=$(BODY="$ORIGINAL" PATHS="$CACHE/posts-r$r.txt" measure resize-r$r 2 -s scripts/wrk-post.lua "$base/"); row "round $r: POST /resize, same options, concurrency 2" "$p"; }
  # Alternate which goes first, so that a drift of the machine's load
  # favours neither.
  if [ $((r % 2)) = 1 ]; then miss; resize; else resize; miss; fi
  ratios="$ratios $(awk -v m="${m%% *}" -v p="${p%% *}" 'BEGIN {printf "%.0f", 100 * m / p}')"
  if [ -n "$imgproxy_pid" ]; then
    row "round $r: imgproxy, concurrency 2" "$(measure imgproxy-r$r 2 -s scripts/wrk-get.lua "$imgproxy_url")"
  fi
done
echo "miss / POST /resize, per round (%):$ratios; median $(tr ' ' '\n' <<<"$ratios" | sed '/^$/d' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}') %"
# Last: imgproxy renders every request, and at concurrency 32 it is still
# working on what wrk left when wrk stops.
if [ -n "$imgproxy_pid" ]; then
  row "imgproxy, same URL, concurrency 32" "$(measure imgproxy-c32 32 -s scripts/wrk-get.lua "$imgproxy_url")"
fi
echo "renders: $(metric 'resizer_delivery_images_total{outcome="rendered"}'), hits: $(metric 'resizer_delivery_images_total{outcome="hit"}')"
