#!/usr/bin/env bash
# Fetch (or reuse) the LOWEST kubernetes Python client the operator's pin allows (pyproject.toml:
# kubernetes>=30) into a --target directory, so one e2e test runs the
# operator's client on it (issue 16 item 12). Prints the directory to put first on PYTHONPATH.
set -euo pipefail
cache=${T2I_CACHE:-$HOME/.cache/t2i-operator}
version=30.1.0
# bump the key when the package list changes
key=3
dir="$cache/kubernetes-client-$version-$key"
mkdir -p "$cache"
exec 9>"$cache/.kubernetes-client.lock"
flock 9
if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir"
  V=$(bash "$(dirname "$0")/venv.sh")
  # With its own dependencies (six, google-auth… which later releases dropped), as a user
  # pinned to it would have them.
  "$V/bin/python" -m pip install -q --target "$dir" "kubernetes==$version" >&2
  touch "$dir/.complete"
fi
echo "$dir"
