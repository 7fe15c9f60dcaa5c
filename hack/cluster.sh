#!/usr/bin/env bash
# Local Kubernetes control plane for the demo and the e2e tests: up | down | status | env.
# `up` builds the binaries first if the cache is incomplete, then prints `export KUBECONFIG=...`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-status}; shift || true
if [[ $cmd == up ]]; then bash "$HERE/cluster/build.sh" >/dev/null; fi
exec python3 "$HERE/cluster/localcluster.py" "$cmd" "$@"
