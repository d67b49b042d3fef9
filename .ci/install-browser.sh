#!/usr/bin/env bash
# Debian's chromium and its chromedriver, for the tests marked `browser` (Selenium drives
# them; nothing is downloaded at test time). Idempotent: does nothing when both are there.
# Needs root or sudo for apt-get; without either it says so and the browser test skips.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "chromium and chromedriver already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "install-browser: not root and no sudo: apt-get install chromium chromium-driver" \
         "by hand; the browser test is skipped until then" >&2
    exit 0
  fi
  SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver >/dev/null
echo "chromium $(chromium --version | awk '{print $2}') installed"
