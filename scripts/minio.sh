#!/usr/bin/env bash
# Builds the MinIO server the tests run against, once per version, into a
# cache outside the repository, and prints its path. MinIO is a test-only
# dependency (archived upstream, AGPL): it is never imported by resizer.
# The first build takes a few minutes on 2 cores; later calls are instant.
set -euo pipefail
version=v0.0.0-20260212201848-7aac2a2c5b7c   # github.com/minio/minio; keep in step with internal/s3test
cache=${RESIZER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/resizer}
bin="$cache/minio-$version/minio"
if [ ! -x "$bin" ]; then
  echo "minio: building github.com/minio/minio@$version into $cache (a few minutes, once)" >&2
  mkdir -p "$cache/minio-$version"
  GOBIN="$cache/minio-$version" go install -ldflags='-s -w' "github.com/minio/minio@$version" >&2
fi
echo "$bin"
