#!/usr/bin/env bash
# Install Debian's chromium for the playground's browser tests (Playwright drives it through
# `executable_path`, so no browser is downloaded from a CDN). A no-op when it is already there.
# Prints the browser's path on stdout.
set -euo pipefail
for candidate in "${T2I_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    echo "$candidate"
    exit 0
  fi
done
command -v apt-get >/dev/null || { echo "chromium.sh: needs apt-get (Debian) or T2I_CHROMIUM" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "chromium.sh: run as root (apt-get install chromium) or set T2I_CHROMIUM" >&2
  exit 1
fi
# Two callers at once would fight over dpkg's lock: the second waits, then finds it installed.
exec 9>/tmp/.t2i-chromium.lock
flock 9
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >&2
fi
echo /usr/bin/chromium
