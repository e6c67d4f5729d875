#!/usr/bin/env bash
# Installs Debian's opencv-doc, whose examples/data/*.avi (one of them damaged) the decoding tests read.
# Needs root (as on CI); elsewhere it says what to run and the tests that need the files are skipped.
# Some Debian releases ship the examples gzipped: they are unpacked beside (the tests read *.avi).
set -u
dir=/usr/share/doc/opencv-doc/examples/data
unpack() {
  for gz in "$dir"/*.avi.gz; do
    [ -e "$gz" ] || continue
    [ -e "${gz%.gz}" ] || gunzip -kf "$gz" 2>/dev/null || true
  done
}
if ls "$dir"/*.avi >/dev/null 2>&1 || ls "$dir"/*.avi.gz >/dev/null 2>&1; then unpack; exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: run 'sudo apt-get install opencv-doc' to enable the tests on real .avi files" >&2
  exit 0
fi
apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opencv-doc >/dev/null
unpack
