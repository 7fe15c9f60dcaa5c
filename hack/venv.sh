#!/usr/bin/env bash
# Print the path of this clone's virtualenv, creating what is missing. Two layers, so that a
# second run on the same machine is fast, a new machine still works, and two clones never
# change what the other imports:
#   * a shared venv with the DEPENDENCIES only (torch, diffusers, kopf, ...; ~6 GB), kept under
#     ~/.cache/t2i-operator/ and keyed by the dependency set and the Python version; the project
#     itself is never installed there (an editable install would point every clone at whichever
#     clone ran last);
#   * a per-clone overlay venv (a second, keyed by this checkout's path) whose site-packages
#     adds the shared one and this checkout's source, with this checkout's console scripts
#     (t2i-server, t2i-operator, t2i-bench, ...).
# Progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${T2I_CACHE:-$HOME/.cache/t2i-operator}
mkdir -p "$cache"

# What the shared venv installs: the dependencies of the extras we use, never the project.
requirements=$(python3 - "$root/pyproject.toml" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project.get("optional-dependencies", {})
reqs = list(project.get("dependencies", []))
for extra in ("operator", "server", "int8", "test"):
    reqs += extras.get(extra, [])
print("\n".join(reqs))
PY
)
key=$( { echo "deps-only-1"; echo "$requirements"; python3 -c 'import sys; print(sys.version_info[:2])'; } \
  | sha256sum | cut -c1-12)
shared="$cache/venv-$key"

# Two callers at once (CI beside a benchmark) would delete each other's half-built copy:
# the second waits for the first, then reuses what it built.
# The lock is per venv, so building one never blocks callers of another.
exec 9>"$shared.lock"
flock 9
if [ ! -x "$shared/bin/python" ] || [ ! -f "$shared/.complete" ]; then
  echo ">> creating venv $shared (torch, diffusers, kopf, ...: a few minutes cold)" >&2
  rm -rf "$shared"
  python3 -m venv "$shared"
  "$shared/bin/pip" install -q --upgrade pip >&2
  reqfile=$(mktemp)
  echo "$requirements" > "$reqfile"
  "$shared/bin/pip" install -q -r "$reqfile" >&2
  rm -f "$reqfile"
  touch "$shared/.complete"
fi

# The overlay: cheap (about a second), rebuilt when the shared venv or the scripts change.
clone_key=$(printf '%s' "$root" | sha256sum | cut -c1-12)
overlay="$cache/clones/$(basename "$root")-$clone_key"
stamp="$shared|$(sha256sum "$root/pyproject.toml" | cut -c1-12)"
mkdir -p "$cache/clones"
exec 8>"$overlay.lock"
flock 8
if [ ! -f "$overlay/.complete" ] || [ "$(cat "$overlay/.complete")" != "$stamp" ]; then
  echo ">> creating the overlay venv $overlay for $root" >&2
  rm -rf "$overlay"
  python3 -m venv --without-pip "$overlay"
  "$overlay/bin/python" - "$root" "$shared" "$overlay" <<'PY'
import os, stat, sys, sysconfig, tomllib
from pathlib import Path

root, shared, overlay = map(Path, sys.argv[1:])
site = Path(sysconfig.get_path("purelib"))  # the overlay's own site-packages
shared_site = next(shared.glob("lib/python*/site-packages"))
# Source first (a .pth line is a sys.path entry), then the shared dependencies as a site dir
# (so their own .pth files run too). Files are processed in name order: 00 before 10.
(site / "00-t2i-source.pth").write_text(f"{root}\n{root / 'operator'}\n")
(site / "10-t2i-shared.pth").write_text(f"import site; site.addsitedir({str(shared_site)!r})\n")
bin_dir = overlay / "bin"
scripts = tomllib.load(open(root / "pyproject.toml", "rb"))["project"].get("scripts", {})
for name, target in scripts.items():
    module, func = target.split(":")
    script = bin_dir / name
    script.write_text(
        f"#!{bin_dir / 'python'}\nimport sys\nfrom {module} import {func}\n"
        f"sys.exit({func}())\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
# The dependencies' tools (ruff, pytest, ...) under the same bin directory.
for tool in (shared / "bin").iterdir():
    dest = bin_dir / tool.name
    if not dest.exists() and not tool.name.startswith(("python", "activate", "pip")):
        os.symlink(tool, dest)
PY
  echo "$stamp" > "$overlay/.complete"
fi
echo "$overlay"
