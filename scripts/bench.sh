#!/usr/bin/env bash
# The load run of docs/benchmarks.md. It measures, in one run on one
# machine, the in-process ceiling (bimg called directly from one goroutine
# per CPU) and the service under wrk at concurrency 1, 2 and 8, sampling the
# server's RSS, then times the refusal of a pixel flood. The machine is
# shared and noisy, so the ceiling and the concurrency-2 and -8 runs
# alternate for ROUNDS rounds, each ratio taken against the mean of the two
# ceilings around it. Only 127.0.0.1 is used; every step is bounded in time.
#
#   ./scripts/bench.sh                 # or: make bench
#   DURATION=30 LONG=180 ROUNDS=3 ./scripts/bench.sh
#
# The photograph is Elephants_5640x3172.jpg from Debian's mate-backgrounds
# package (GPL-2+), re-encoded once by the service as a baseline JPEG at
# quality 90, as a camera would write it.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}   # seconds per wrk run
LONG=${LONG:-170}          # seconds of the concurrency-8 run that checks RSS over >2000 requests
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18090}
CACHE=${CACHE:-.cache/bench}
URL="http://127.0.0.1:$PORT/resize?width=800&quality=80"
mkdir -p "$CACHE"
command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }
go build -trimpath -o bin/server ./cmd/server   # always the current code

. scripts/server.sh
trap 'stop_server; [ -z "${imgproxy_pid:-}" ] || stop_imgproxy' EXIT

photo="$CACHE/photo.jpg"
if [ ! -s "$photo" ]; then
  (cd "$CACHE" && apt-get download mate-backgrounds >/dev/null)
  rm -rf "$CACHE/deb" && dpkg-deb -x "$CACHE"/mate-backgrounds_*.deb "$CACHE/deb"
  start_server
  curl -fsS --data-binary @"$CACHE/deb/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg" \
    "http://127.0.0.1:$PORT/resize?quality=90" -o "$photo"
  stop_server
fi
echo "photo: $(stat -c %s "$photo") bytes"

ceiling() { # prints images per second
  BENCH_IMAGE=$PWD/$photo go test ./internal/imageproc -run '^$' -bench '^BenchmarkCeiling$' -benchtime "${DURATION}s" -count 1 |
    awk '/^BenchmarkCeiling/ {printf "%.2f\n", 1e9/$3}'
}

# rss_sampler writes "seconds pss_kib" (server_kib) every second until killed.
rss_sampler() { local t=0; while kill -0 "$server_pid" 2>/dev/null; do
  echo "$t $(server_kib)"; sleep 1; t=$((t+1)); done; }

# imgproxy, when IMGPROXY_BIN names a binary of it, does the same work in
# the same rounds: the photo, from its local file system, to 800 wide at
# quality 80, stripped, with as many workers as CPUs. It reads the photo
# from disk where resizer receives it over HTTP.
IMGPROXY_PORT=${IMGPROXY_PORT:-18095}
IMGPROXY_URL="http://127.0.0.1:$IMGPROXY_PORT/insecure/rs:fit:800:0/q:80/plain/local:///photo.jpg@jpg"
imgproxy_pid=""
start_imgproxy() {
  IMGPROXY_BIND=127.0.0.1:$IMGPROXY_PORT IMGPROXY_LOCAL_FILESYSTEM_ROOT="$PWD/$CACHE" IMGPROXY_WORKERS="$(nproc)" \
    IMGPROXY_LOG_LEVEL=warn IMGPROXY_MAX_SRC_RESOLUTION=50 "$IMGPROXY_BIN" >"$CACHE/imgproxy.log" 2>&1 &
  imgproxy_pid=$!
  for _ in $(seq 1 100); do curl -fs -o /dev/null "$IMGPROXY_URL" && return; sleep 0.1; done
  echo "bench: imgproxy did not start" >&2; exit 1
}
stop_imgproxy() { [ -n "$imgproxy_pid" ] && kill "$imgproxy_pid" 2>/dev/null && wait "$imgproxy_pid" 2>/dev/null || true; imgproxy_pid=""; }
get_load() { # concurrency seconds label: wrk GETs of imgproxy's URL; sets $rps
  local c=$1 d=$2 label=$3
  wrk -t"$(( c < 2 ? 1 : 2 ))" -c"$c" -d"${d}s" --timeout 30s -s scripts/wrk-get.lua "$IMGPROXY_URL" >"$CACHE/wrk-$label.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$CACHE/wrk-$label.txt")
  echo "$label concurrency=$c images_per_s=$rps $(grep RESULT "$CACHE/wrk-$label.txt" | cut -d' ' -f2-)"
}

load() { # concurrency seconds label; prints a summary line, sets $rps
  local c=$1 d=$2 label=$3
  BODY="$photo" wrk -t"$(( c < 2 ? 1 : 2 ))" -c"$c" -d"${d}s" --timeout 30s -s scripts/wrk-post.lua "$URL" >"$CACHE/wrk-$label.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$CACHE/wrk-$label.txt")
  local non2xx; non2xx=$(awk '/Non-2xx/ {print $NF}' "$CACHE/wrk-$label.txt")
  echo "$label concurrency=$c images_per_s=$rps non2xx=${non2xx:-0} $(grep RESULT "$CACHE/wrk-$label.txt" | cut -d' ' -f2-)"
}

echo "== $(date -u +%FT%TZ) $(nproc) CPUs, $(go env GOVERSION), libvips $(pkg-config --modversion vips)"
before=$(ceiling)
for round in $(seq 1 "$ROUNDS"); do
  start_server
  [ "$round" = 1 ] && load 1 "$DURATION" c1
  load 2 "$DURATION" "c2-r$round"; r2=$rps
  load 8 "$DURATION" "c8-r$round"; r8=$rps
  stop_server
  if [ -n "${IMGPROXY_BIN:-}" ]; then
    start_imgproxy
    get_load 2 "$DURATION" "imgproxy-c2-r$round"; i2=$rps
    get_load 8 "$DURATION" "imgproxy-c8-r$round"; i8=$rps
    stop_imgproxy
    awk -v r2="$r2" -v r8="$r8" -v i2="$i2" -v i8="$i8" -v n="$round" 'BEGIN {
      printf "round %d resizer/imgproxy: c2 %.2f/%.2f = %.1f%%, c8 %.2f/%.2f = %.1f%%\n", n, r2, i2, 100*r2/i2, r8, i8, 100*r8/i8 }'
  fi
  after=$(ceiling)
  awk -v b="$before" -v a="$after" -v r2="$r2" -v r8="$r8" -v n="$round" 'BEGIN {
    c = (a + b) / 2
    printf "round %d ceiling=%.2f..%.2f c2/ceiling=%.1f%% c8/ceiling=%.1f%%\n", n, b, a, 100*r2/c, 100*r8/c }'
  before=$after
done
start_server
rss_sampler >"$CACHE/rss.txt" & sampler=$!
load 8 "$LONG" c8-long
kill "$sampler" 2>/dev/null || true
echo "pss_kib of the server and its workers during c8-long (every 10 s): $(awk 'NR % 10 == 1 {printf "%s ", $2}' "$CACHE/rss.txt")"
echo "peak_pss_kib=$(awk '$2 > m {m = $2} END {print m}' "$CACHE/rss.txt") (of the samples, every second)"
flood=()
for _ in $(seq 1 20); do
  flood+=("$(curl -s -o /dev/null -w '%{http_code}:%{time_total}' --data-binary @testdata/flood.png "$URL")")
done
echo "flood (status:seconds): ${flood[*]}"
