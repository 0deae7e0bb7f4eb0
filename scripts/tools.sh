#!/usr/bin/env bash
# Builds a program the tests or the docs' walk-throughs (docs/s3-flow.md) run beside
# resizer, once per version, into a cache outside the repository, and
# prints its path:
#   minio  the S3 server the tests run against (a few minutes, once)
#   mc     MinIO's client, for trying the S3 flow by hand (about a minute)
#   rie    AWS's Lambda Runtime Interface Emulator, to run the forwarder
#          as Lambda runs it (about 20 s)
#   goaws  an SQS- and SNS-compatible server (goaws), for the tests of the
#          queue between S3 and the forwarder (about 20 s); built from
#          scripts/goaws, which pins its version and listens on 127.0.0.1
# None of them is ever imported by resizer; MinIO (archived upstream,
# AGPL) is a test and local-development dependency only.
set -euo pipefail
what=${1:-minio}
case "$what" in
  minio) module=github.com/minio/minio pkg=github.com/minio/minio
         # the version the tests expect, from internal/s3test (its one place)
         version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' "$(dirname "$0")/../internal/s3test/s3test.go") ;;
  mc)    module=github.com/minio/mc pkg=github.com/minio/mc version=v0.0.0-20250313080218-cf909e1063a9 ;;
  rie)   module=github.com/aws/aws-lambda-runtime-interface-emulator
         pkg=$module/cmd/aws-lambda-rie version=v0.0.0-20261030222936-bef5c4ba774d ;;
  goaws) src="$(cd "$(dirname "$0")/goaws" && pwd)" pkg=goaws
         version=$(awk '$1 == "github.com/Admiral-Piett/goaws" {print $2}' "$src/go.mod") ;;
  *) echo "usage: $0 minio|mc|rie|goaws" >&2; exit 2 ;;
esac
cache=${RESIZER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/resizer}
dir="$cache/$what-$version"
bin="$dir/$(basename "$pkg")"
if [ ! -x "$bin" ]; then
  echo "$what: building $pkg@$version into $cache (once)" >&2
  mkdir -p "$dir"
  if [ "$what" = goaws ]; then
    (cd "$src" && go build -trimpath -ldflags='-s -w' -o "$bin" .) >&2
  else
    GOBIN="$dir" go install -ldflags='-s -w' "$pkg@$version" >&2
  fi
fi
echo "$bin"
