"""The model-files digest: computed once at start-up, reproducible with coreutils.

manifest = one line per regular file under the model directory (symlinks followed), sorted by
relative path (bytewise), skipping paths with a component that starts with "." (download-tool
metadata such as .cache/huggingface, which differs between two downloads of the same model):
    "<sha256 hex>  <relative path>\\n"          (the format of `sha256sum`)
model_digest = "sha256:" + sha256(manifest)
Shell equivalent (docs/tdx-migration.md):
    cd MODEL_DIR && find -L . -type f -not -path '*/.*' -printf '%P\\n' | LC_ALL=C sort \\
      | while IFS= read -r f; do sha256sum "$f"; done | sha256sum
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20


def _files(root: Path) -> list[str]:
    found = []
    for directory, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(directory, name)
            if not name.startswith(".") and path.is_file():
                found.append(path.relative_to(root).as_posix())
    return sorted(found, key=lambda p: p.encode())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_digest(root: Path) -> tuple[str, int]:
    """("sha256:<hex>", number of files) for the model directory ``root``."""
    if not root.is_dir():
        raise FileNotFoundError(errno.ENOENT, "the model directory does not exist", str(root))
    files = _files(root)
    manifest = "".join(f"{_sha256(root / name)}  {name}\n" for name in files)
    return "sha256:" + hashlib.sha256(manifest.encode()).hexdigest(), len(files)
