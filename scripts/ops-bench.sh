#!/usr/bin/env bash
# The cost of each operation (docs/benchmarks.md), resizer beside imgproxy,
# measured in one run on one machine: for each operation, wrk at
# concurrency 2 for DURATION seconds against resizer's POST /resize with the
# photo as body, then against imgproxy's equivalent URL of the same file.
# IMGPROXY_BIN must name an imgproxy binary (v4); without it only resizer is
# measured. Only 127.0.0.1 is used; every step is bounded in time.
#
#   IMGPROXY_BIN=/path/to/imgproxy ./scripts/ops-bench.sh
#   ONLY='max_bytes|focus' IMGPROXY_BIN=... ./scripts/ops-bench.sh   # some operations only
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
PORT=${PORT:-18096}
IMGPROXY_PORT=${IMGPROXY_PORT:-18097}
CACHE=${CACHE:-.cache/bench}
mkdir -p "$CACHE/data/watermarks"
command -v wrk >/dev/null || { echo "ops-bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }
photo="$CACHE/photo.jpg"
[ -s "$photo" ] || { echo "ops-bench: run scripts/bench.sh once first (it makes $photo)" >&2; exit 1; }
go build -trimpath -o bin/server ./cmd/server
[ -s "$CACHE/anim.gif" ] || go run ./scripts/animgif "$CACHE/anim.gif" 40 400 300
. scripts/server.sh

imgproxy_pid=""
stop_imgproxy() { if [ -n "$imgproxy_pid" ]; then kill "$imgproxy_pid" 2>/dev/null || true; wait "$imgproxy_pid" 2>/dev/null || true; imgproxy_pid=""; fi; }
trap 'stop_server; stop_imgproxy' EXIT

start_server MAX_FRAMES=500
# The watermark: a 300x100 PNG, made by the service itself, in the local
# store's watermarks/ (and given to imgproxy as its watermark).
curl -fsS --data-binary @testdata/ladybird.jpg "http://127.0.0.1:$PORT/resize?width=300&height=100&fit=cover&format=png" \
  -o "$CACHE/data/watermarks/logo.png"
if [ -n "${IMGPROXY_BIN:-}" ]; then
  IMGPROXY_BIND=127.0.0.1:$IMGPROXY_PORT IMGPROXY_LOCAL_FILESYSTEM_ROOT="$PWD/$CACHE" IMGPROXY_WORKERS="$(nproc)" \
    IMGPROXY_LOG_LEVEL=warn IMGPROXY_MAX_SRC_RESOLUTION=50 IMGPROXY_MAX_ANIMATION_FRAMES=500 IMGPROXY_AVIF_SPEED=8 \
    IMGPROXY_WATERMARK_PATH="$PWD/$CACHE/data/watermarks/logo.png" "$IMGPROXY_BIN" >"$CACHE/imgproxy.log" 2>&1 &
  imgproxy_pid=$!
  for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$IMGPROXY_PORT/health" && break; sleep 0.1; done
fi

# name | resizer query | imgproxy processing options | imgproxy extension | source
ops=(
  "resize to 800|width=800|rs:fit:800:0|jpg|photo.jpg"
  "cover 400x400|width=400&height=400&fit=cover|rs:fill:400:400|jpg|photo.jpg"
  "cover, gravity northeast|width=400&height=400&fit=cover&gravity=northeast|rs:fill:400:400/g:noea|jpg|photo.jpg"
  "cover, focus 0.8,0.3|width=400&height=400&fit=cover&gravity=focus&focus=0.8,0.3|rs:fill:400:400/g:fp:0.8:0.3|jpg|photo.jpg"
  "crop, then 800|crop=1000,500,2000,1500&width=800|c:2000:1500:nowe:1000:500/rs:fit:800:0|jpg|photo.jpg"
  "rotate 90|width=800&rotate=90|rs:fit:800:0/rot:90|jpg|photo.jpg"
  "flip|width=800&flip=horizontal|rs:fit:800:0/fl:1:0|jpg|photo.jpg"
  "blur 2|width=800&blur=2|rs:fit:800:0/bl:2|jpg|photo.jpg"
  "sharpen 1|width=800&sharpen=1|rs:fit:800:0/sh:1|jpg|photo.jpg"
  "trim 10|width=800&trim=10|t:10/rs:fit:800:0|jpg|photo.jpg"
  "pad 10,20,10,20|width=800&pad=10,20,10,20|rs:fit:800:0/pd:10:20:10:20|jpg|photo.jpg"
  "dpr 2|width=400&dpr=2|rs:fit:400:0/dpr:2|jpg|photo.jpg"
  "watermark|width=800&watermark=logo.png&watermark_scale=0.2|rs:fit:800:0/wm:1:soea:0:0:0.2|jpg|photo.jpg"
  "WebP|width=800&format=webp|rs:fit:800:0|webp|photo.jpg"
  "AVIF|width=800&format=avif|rs:fit:800:0|avif|photo.jpg"
  "max_bytes 40 KB|width=800&max_bytes=40000|rs:fit:800:0/mb:40000|jpg|photo.jpg"
  "keep copyright|width=800&keep=copyright|rs:fit:800:0/sm:1/kcr:1|jpg|photo.jpg"
  "animated GIF to 200|width=200|rs:fit:200:0|gif|anim.gif"
)

rate() { awk '/Requests\/sec/ {print $2}' "$1"; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }
# The load of a shared machine drifts: each operation is measured in
# ROUNDS alternating slices of DURATION/ROUNDS seconds, resizer then
# imgproxy, and the rates averaged, so that both see the same drift.
ROUNDS=${ROUNDS:-3}
slice=$(( (DURATION + ROUNDS - 1) / ROUNDS ))
echo "== $(date -u +%FT%TZ) $(nproc) CPUs, $(go env GOVERSION), libvips $(pkg-config --modversion vips); $ROUNDS x ${slice}s each, concurrency 2"
printf '| operation | resizer images/s | imgproxy images/s | resizer / imgproxy |\n|---|---|---|---|\n'
for op in "${ops[@]}"; do
  IFS='|' read -r name query ipx ext src <<<"$op"
  # ONLY, a regular expression, picks operations by name.
  if [ -n "${ONLY:-}" ] && ! [[ "$name" =~ $ONLY ]]; then continue; fi
  r=0; i=0
  for _ in $(seq 1 "$ROUNDS"); do
    BODY="$CACHE/$src" wrk -t2 -c2 -d"${slice}s" --timeout 60s -s scripts/wrk-post.lua \
      "http://127.0.0.1:$PORT/resize?$query" >"$CACHE/ops-resizer.txt"
    r=$(sum "$r" "$(rate "$CACHE/ops-resizer.txt")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$CACHE/ops-resizer.txt")
    [ -z "$non2xx" ] || echo "warning: $name: $non2xx non-2xx answers from resizer" >&2
    if [ -n "$imgproxy_pid" ]; then
      wrk -t2 -c2 -d"${slice}s" --timeout 60s -s scripts/wrk-get.lua \
        "http://127.0.0.1:$IMGPROXY_PORT/insecure/$ipx/plain/local:///$src@$ext" >"$CACHE/ops-imgproxy.txt"
      i=$(sum "$i" "$(rate "$CACHE/ops-imgproxy.txt")")
    fi
  done
  r=$(awk -v a="$r" -v n="$ROUNDS" 'BEGIN { printf "%.2f", a / n }')
  if [ -n "$imgproxy_pid" ]; then
    i=$(awk -v a="$i" -v n="$ROUNDS" 'BEGIN { printf "%.2f", a / n }')
    ratio=$(awk -v a="$r" -v b="$i" 'BEGIN { if (b > 0) printf "%.0f %%", 100 * a / b; else print "-" }')
  else
    i="-"; ratio="-"
  fi
  printf '| %s | %s | %s | %s |\n' "$name" "$r" "$i" "$ratio"
done
