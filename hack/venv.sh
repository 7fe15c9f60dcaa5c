#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv outside the clone, keyed by the dependency set,
# so a second run on the same machine is fast and a new machine still works.
# Prints the venv path on stdout; progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${T2I_CACHE:-$HOME/.cache/t2i-operator}
# Key on what is installed (dependencies + python), not on the whole pyproject.toml.
key=$(python3 - "$root/pyproject.toml" <<'PY' | sha256sum | cut -c1-12
import json, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
deps = {"deps": project.get("dependencies", []), "extras": project.get("optional-dependencies", {})}
print(json.dumps(deps, sort_keys=True), sys.version_info[:2])
PY
)
venv="$cache/venv-$key"
mkdir -p "$cache"
# Two callers at once (CI beside a benchmark) would delete each other's half-built copy:
# the second waits for the first, then reuses what it built.
exec 9>"$cache/.venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo ">> creating venv $venv (torch, diffusers, kopf, ...: a few minutes cold)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -e "$root[operator,server,int8,test]" >&2
  touch "$venv/.complete"
else
  # Cheap: re-point the editable install at this clone (a fresh clone lives elsewhere).
  "$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$root" >&2
fi
echo "$venv"
