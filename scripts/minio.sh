#!/usr/bin/env bash
# Builds the MinIO server the tests run against (or, with the argument
# "mc", MinIO's client for trying the S3 flow by hand), once per version,
# into a cache outside the repository, and prints its path. MinIO is a
# test and local-development dependency (archived upstream, AGPL): it is
# never imported by resizer. The first server build takes a few minutes on
# 2 cores, the client's about one; later calls are instant.
set -euo pipefail
what=${1:-minio}
case "$what" in
  minio) module=github.com/minio/minio version=v0.0.0-20260212201848-7aac2a2c5b7c ;;  # keep in step with internal/s3test
  mc)    module=github.com/minio/mc    version=v0.0.0-20250313080218-cf909e1063a9 ;;
  *) echo "usage: $0 [minio|mc]" >&2; exit 2 ;;
esac
cache=${RESIZER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/resizer}
bin="$cache/$what-$version/$what"
if [ ! -x "$bin" ]; then
  echo "$what: building $module@$version into $cache (once)" >&2
  mkdir -p "$cache/$what-$version"
  GOBIN="$cache/$what-$version" go install -ldflags='-s -w' "$module@$version" >&2
fi
echo "$bin"
