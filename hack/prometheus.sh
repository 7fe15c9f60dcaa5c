#!/usr/bin/env bash
# Prometheus from Debian (2.42, `apt-get install prometheus`) for the autoscaling test tier; it
# runs as a plain process with its own config and data dir (tests/autoscale), never the
# package's service. Prints the binary's path on the last line of stdout.
#   T2I_PROMETHEUS_NO_APT=1  do not apt-get install it; fail naming the package instead
set -euo pipefail
log() { echo "[$(date -u +%H:%M:%S)] prometheus: $*" >&2; }
if ! command -v prometheus >/dev/null 2>&1; then
  if [ "${T2I_PROMETHEUS_NO_APT:-0}" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "prometheus: not installed (Debian package 'prometheus')" >&2
    exit 2
  fi
  log "installing the Debian package (no recommends: no node exporter)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2 \
    || { echo "prometheus: apt-get install prometheus failed" >&2; exit 2; }
fi
log "$(prometheus --version 2>&1 | head -1)"
command -v prometheus
