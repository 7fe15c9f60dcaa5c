#!/usr/bin/env bash
# Create (or reuse) a separate virtualenv for the tutorial's IPEX recipe, so `t2i-bench --compare`
# can measure it beside our backends. IPEX is retired after 2.8: it needs torch 2.8,
# transformers 4.55-era and diffusers <= 0.35, which cannot share the main venv (transformers 5).
# The pins are the `ipex` extra in pyproject.toml. Prints the venv's python on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${T2I_CACHE:-$HOME/.cache/t2i-operator}
mapfile -t pins < <(python3 - "$root/pyproject.toml" <<'PY'
import sys, tomllib
extras = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]
# protobuf: transformers 4.55 needs it to load the CLIP tokenizers.
for pin in extras["ipex"] + ["pillow>=10", "safetensors>=0.4", "accelerate>=1.0", "protobuf"]:
    print(pin)
PY
)
key=$(printf '%s\n' "${pins[@]}" "$(python3 -V)" | sha256sum | cut -c1-12)
venv="$cache/ipex-venv-$key"
mkdir -p "$cache"
# Two callers at once (CI beside a benchmark) would delete each other's half-built copy:
# the second waits for the first, then reuses what it built.
exec 9>"$cache/.ipex-venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo ">> creating IPEX venv $venv (torch 2.8 + IPEX 2.8: a few GB, a few minutes cold)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q "${pins[@]}" >&2
  # Fail here, with IPEX's own message, rather than in the middle of a benchmark.
  "$venv/bin/python" -c 'import intel_extension_for_pytorch as ipex; print("ipex", ipex.__version__)' >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
