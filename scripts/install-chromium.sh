#!/usr/bin/env bash
# Debian's Chromium, which Playwright drives for the JavaScript auction sites (the demo's
# JavaScript house, the browser tests); installed once, if missing.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's Chromium (Playwright drives it for JavaScript sites)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
