#!/usr/bin/env bash
# Builds the Dockerfile and runs the image and the compose stack, on a
# machine with podman but no Docker daemon and no registry: the base images
# are made locally (debootstrap for debian:bookworm-slim, that plus the
# host's Go for golang:1.26-bookworm); the compose file builds MinIO's
# image itself, from source, as it does for users. Run as root; .ci/run calls
# it. A cold run takes a few minutes, a warm one seconds. Only 127.0.0.1
# ports are published.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
step() { echo "== [$((SECONDS - t0))s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

IMAGE=${IMAGE:-localhost/resizer:ci}
PORT=${PORT:-18080}                 # the smoke test's published port
WORK=${WORK:-/var/tmp/resizer-containers}
GO=${GO:-$(command -v go)}
export BUILDAH_FORMAT=docker DEBIAN_FRONTEND=noninteractive
mkdir -p "$WORK"

step "podman"
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null ||
   ! command -v podman-compose >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    podman runc netavark aardvark-dns iptables podman-compose debootstrap ca-certificates curl >/dev/null
fi
# This VM: crun cannot handle its hybrid cgroups, and root lacks
# CAP_SYS_RESOURCE, so podman's default ulimits cannot be set.
mkdir -p /etc/containers
cat > /etc/containers/containers.conf <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF

step "base image debian:bookworm-slim"
if ! podman image exists docker.io/library/debian:bookworm-slim; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  root="$WORK/rootfs"; rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" ${mirror:+"$mirror"} >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log"; fail debootstrap; }
  # The host's apt sources and settings, and its CA bundle (which may hold
  # certificates beyond Debian's), kept where ca-certificates keeps them.
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    rm -f "$root/etc/apt/sources.list"; cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
  fi
  cp /etc/apt/apt.conf.d/* "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
  mkdir -p "$root/usr/local/share/ca-certificates" "$root/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/host-bundle.crt"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | podman import --change 'CMD ["bash"]' - docker.io/library/debian:bookworm-slim >/dev/null
  rm -rf "$root"
fi

step "base image golang:1.26-bookworm"
if ! podman image exists docker.io/library/golang:1.26-bookworm; then
  goroot=$("$GO" env GOROOT)
  mkdir -p "$WORK/golang"
  cat > "$WORK/golang/Containerfile" <<'CF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      g++ gcc libc6-dev make pkg-config git ca-certificates curl netbase \
 && rm -rf /var/lib/apt/lists/*
COPY go /usr/local/go
ENV GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /go/bin && chmod -R 1777 /go && go version
WORKDIR /go
CF
  podman build --pull=never -q -f "$WORK/golang/Containerfile" -t docker.io/library/golang:1.26-bookworm "$(dirname "$goroot")" >/dev/null
fi

step "build $IMAGE from the Dockerfile"
podman build --pull=never --build-arg GOPROXY="$("$GO" env GOPROXY)" -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
  { tail -40 "$WORK/build.log"; fail "image build"; }
podman image inspect "$IMAGE" --format 'size {{.Size}} bytes, user {{.Config.User}}'

step "smoke test: health, a resize, non-root, SIGTERM drains"
podman rm -f -t 0 resizer-smoke >/dev/null 2>&1 || true
podman run -d --name resizer-smoke -p "127.0.0.1:$PORT:8080" "$IMAGE" >/dev/null
trap 'podman rm -f -t 0 resizer-smoke >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || { podman logs resizer-smoke; fail "/healthz"; }
code=$(curl -sS -o "$WORK/small.jpg" -w '%{http_code} %{content_type}' --data-binary @testdata/ladybird.jpg \
  "http://127.0.0.1:$PORT/resize?width=300")
[ "$code" = "200 image/jpeg" ] || fail "POST /resize: $code"
[ "$(head -c 3 "$WORK/small.jpg" | od -An -tx1 | tr -d ' ')" = "ffd8ff" ] || fail "POST /resize: not a JPEG"
uid=$(podman exec resizer-smoke awk '/^Uid:/ {print $2}' /proc/1/status)
[ "$uid" != 0 ] || fail "the server runs as root"
echo "resize ok, server uid $uid"
podman healthcheck run resizer-smoke >/dev/null || fail "HEALTHCHECK"
# A slow request in flight when SIGTERM comes must still get its answer,
# and the container must exit well within ECS's 30 s stop timeout.
curl -sS -o /dev/null -w '%{http_code}' --data-binary @testdata/ladybird.jpg \
  "http://127.0.0.1:$PORT/resize?format=avif&quality=90" >"$WORK/inflight.txt" &
inflight=$!
sleep 0.3
stop_start=$SECONDS
podman kill --signal TERM resizer-smoke >/dev/null
podman wait resizer-smoke >/dev/null
stopped=$((SECONDS - stop_start))
wait "$inflight" || true
[ "$(cat "$WORK/inflight.txt")" = 200 ] || fail "the request in flight got $(cat "$WORK/inflight.txt")"
[ "$stopped" -lt 25 ] || fail "took ${stopped}s to stop"
podman logs resizer-smoke 2>&1 | grep -q '"stopped"' || fail "no clean shutdown in the log"
echo "SIGTERM: in-flight request answered 200, exited in ${stopped}s"
podman rm -f -t 0 resizer-smoke >/dev/null; trap - EXIT

step "compose: MinIO and mc built from source at the tests' versions (deploy/minio)"
export GOPROXY=${GOPROXY:-$("$GO" env GOPROXY)}
podman-compose -p resizer-ci -f docker-compose.yml build minio >"$WORK/minio-build.log" 2>&1 ||
  { tail -40 "$WORK/minio-build.log"; fail "MinIO image build"; }
mc=$(./scripts/tools.sh mc)   # the same version, to poke the stack from outside

step "compose: the S3-triggered flow in containers"
podman tag "$IMAGE" localhost/resizer:local
podman tag "$IMAGE" docker.io/library/resizer:local
export RESIZER_PORT=${RESIZER_PORT:-18081} MINIO_PORT=${MINIO_PORT:-19000}
compose() { podman-compose -p resizer-ci -f docker-compose.yml "$@"; }
compose down -v >/dev/null 2>&1 || true
trap 'compose logs >"$WORK/compose.log" 2>&1 || true; compose down -v >/dev/null 2>&1 || true' EXIT
compose up -d >"$WORK/compose-up.log" 2>&1 || { tail -40 "$WORK/compose-up.log"; fail "compose up"; }
ready() { curl -fsS "http://127.0.0.1:$RESIZER_PORT/readyz" >/dev/null 2>&1; }
for _ in $(seq 1 150); do ready && break; sleep 0.2; done
ready || { compose logs 2>&1 | tail -40; fail "resizer not ready"; }
export MC_CONFIG_DIR="$WORK/mc"
"$mc" alias set ci "http://127.0.0.1:$MINIO_PORT" minioadmin minioadmin >/dev/null
# podman-compose may start the one-shot setup before MinIO is healthy:
# wait until it has made the bucket and the notification.
for _ in $(seq 1 150); do "$mc" event ls ci/photos 2>/dev/null | grep -q RESIZER && break; sleep 0.2; done
"$mc" event ls ci/photos | grep -q RESIZER || { compose logs setup 2>&1 | tail; fail "bucket notification"; }
"$mc" cp -q testdata/ladybird.jpg "ci/photos/uploads/from compose.jpg" >/dev/null
found=0
for _ in $(seq 1 150); do
  # The three variants, then the original's manifest (written last).
  n=$("$mc" ls -r ci/photos/resized/ 2>/dev/null | grep -v "_manifest/" | grep -c "from compose.jpg" || true)
  m=$("$mc" ls -r ci/photos/resized/_manifest/ 2>/dev/null | grep -c "from compose.jpg.json" || true)
  [ "$n" = 3 ] && [ "$m" = 1 ] && { found=1; break; }
  sleep 0.2
done
"$mc" ls -r ci/photos
[ "$found" = 1 ] || { compose logs 2>&1 | tail -40; fail "the variants did not appear"; }
step "done"
