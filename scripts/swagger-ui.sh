#!/usr/bin/env bash
# Refreshes the Swagger UI files that GET /docs serves, from the npm
# package, at the pinned version: go generate ./... runs it. Only the
# files the page loads are kept, with the package's licence.
set -euo pipefail
version=5.35.0
dest="$(cd "$(dirname "$0")/.." && pwd)/internal/httpapi/web/swagger"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "swagger-ui-dist@$version" >/dev/null)
tar -xzf "$tmp/swagger-ui-dist-$version.tgz" -C "$tmp"
mkdir -p "$dest"
for f in swagger-ui.css swagger-ui-bundle.js LICENSE NOTICE; do
  cp "$tmp/package/$f" "$dest/$f"
done
echo "$version" >"$dest/VERSION"
