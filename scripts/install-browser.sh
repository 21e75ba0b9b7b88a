#!/usr/bin/env bash
# Installs Debian's headless Chromium for the dashboard's browser tests.
# Idempotent; never downloads a browser of a test tool's own (those downloads fail offline).
# Without root or apt the browser tests skip with a reason instead.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: chromium missing and no root/apt-get; browser tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "install-browser: apt-get install chromium failed; browser tests will skip" >&2
exit 0
