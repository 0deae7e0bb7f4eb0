#!/usr/bin/env bash
# Installs what building and testing resizer needs, when it is missing:
# Go (checked, not installed) and libvips with its headers; with the
# argument "test", also Chromium for the browser tests. On Debian and
# Ubuntu it uses apt-get (through sudo when not root); on macOS Homebrew;
# elsewhere it says what to install.
set -euo pipefail
mode=${1:-build}
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

# The tests read outputs with independent tools: Chromium (the pages),
# exiftool (metadata), libvips' and libjpeg's command-line tools and
# libwebp's (reference decoders and encoders for the cleaners' tests);
# Node runs the stack's CloudFront function.
test_tools="chromium:chromium exiftool:libimage-exiftool-perl vips:libvips-tools djpeg:libjpeg-turbo-progs cwebp:webp webpmux:webp gif2webp:webp pgrep:procps node:nodejs"
if [ "$mode" = test ]; then
  missing=""
  for t in $test_tools; do
    command -v "${t%%:*}" >/dev/null 2>&1 || missing="$missing ${t#*:}"
  done
  if [ -n "$missing" ]; then
    if command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing the tests' tools:$missing" >&2
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
      echo "setup: the tests need these (Debian package names):$missing" >&2
      exit 1
    fi
  fi
fi

need_go="1.26"
if ! command -v go >/dev/null 2>&1; then
  echo "setup: Go $need_go or newer is needed: https://go.dev/dl/" >&2
  exit 1
fi
have_go=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
  echo "setup: Go $need_go or newer is needed, found $have_go" >&2
  exit 1
fi

# libvips 8.13 or newer: the service blocks libvips' untrusted loaders,
# which older versions cannot do.
if pkg-config --atleast-version=8.13 vips 2>/dev/null; then
  exit 0
fi
echo "setup: installing libvips (libvips-dev 8.13 or newer is needed)" >&2
if command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libvips-dev pkg-config gcc libc6-dev >/dev/null
elif command -v brew >/dev/null 2>&1; then
  brew install vips pkg-config
else
  echo "setup: install libvips 8.13+ with its development headers and pkg-config, then run this again" >&2
  echo "       (Fedora: dnf install vips-devel; Arch: pacman -S libvips; Alpine: apk add vips-dev)" >&2
  exit 1
fi
pkg-config --atleast-version=8.13 vips || { echo "setup: libvips is still missing or older than 8.13" >&2; exit 1; }
