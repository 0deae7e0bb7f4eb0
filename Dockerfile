# syntax=docker/dockerfile:1
# resizer: the service on libvips, for ECS Fargate (linux/amd64 and
# linux/arm64 for Graviton: build with --platform). Debian bookworm both
# stages, so that the libvips the binary is built against is the one it
# runs with.

FROM golang:1.26-bookworm AS build
ARG GOPROXY
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvips-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o /out/resizer ./cmd/server

FROM debian:bookworm-slim
# libvips' runtime only: no compilers, no headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvips42 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
 && mkdir /data && chown app:app /data
COPY --from=build /out/resizer /usr/local/bin/resizer
# glibc gives each thread that meets contention its own malloc arena (up to
# 8 per core); libvips' worker threads then strand freed pixel buffers
# across them and RSS creeps. Two arenas keep it flat (the server sets the
# same for itself when this is unset).
ENV MALLOC_ARENA_MAX=2 \
    ADDR=0.0.0.0:8080 \
    DATA_DIR=/data
USER app
EXPOSE 8080
VOLUME /data
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/resizer", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/resizer"]
