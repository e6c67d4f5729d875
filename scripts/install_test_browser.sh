#!/usr/bin/env bash
# Installs Debian's chromium, which the search page tests (tests/apps/test_serve.py) drive headless.
# Needs root (as on CI); elsewhere it says what to run and the browser test is skipped.
set -u
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: run 'sudo apt-get install chromium' to enable the headless browser test" >&2
  exit 0
fi
apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
