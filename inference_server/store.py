"""Generated images on disk: PNGs under the output directory, bounded, served only from inside."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_NAME = re.compile(r"^[0-9]{1,4}_[0-9]{1,4}\.png$")


class ImageStore:
    """One directory per request id; the oldest requests go first when a bound is passed.

    Bounds: request count, total bytes, and age in seconds (``max_age`` 0 = none). They are
    enforced after every request and once at start-up (images a previous process left behind).
    """

    def __init__(
        self,
        root: Path,
        max_requests: int = 1000,
        max_bytes: int = 2 << 30,
        max_age: float = 0.0,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._lock = threading.Lock()
        self._active: set[str] = set()  # requests still writing: retention never touches them
        self.remove_partial_writes()
        self.enforce_retention()

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    def save(self, request_id: str, name: str, image) -> Path:
        if not (_ID.match(request_id) and _NAME.match(name)):
            raise ValueError("invalid image id or name")
        with self._lock:
            self._active.add(request_id)
            directory = self.root / request_id
            directory.mkdir(exist_ok=True)
        path = directory / name
        # Written under a temporary name in the same directory, then renamed: a reader (or a
        # restart after a kill) sees the whole PNG or no file, never a partial one.
        temporary = directory / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            image.save(temporary, format="PNG")
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return path

    def release(self, request_id: str) -> None:
        """The request has written all it will write; retention may delete it from now on."""
        with self._lock:
            self._active.discard(request_id)

    def _expired(self, mtime: float) -> bool:
        return self.max_age > 0 and mtime < time.time() - self.max_age

    def remove_partial_writes(self) -> int:
        """Temporary files a killed process left behind (only at start-up: no writer yet)."""
        removed = 0
        for leftover in self.root.glob("*/.*.tmp"):
            if _ID.match(leftover.parent.name) and not leftover.is_symlink():
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    def enforce_retention(self, keep: str | None = None) -> list[str]:
        """Delete whole request directories, oldest first, until every bound holds. ``keep`` (the
        request just answered) is never deleted: its URLs are about to be handed out."""
        with self._lock:
            entries = [
                d
                for d in self.root.iterdir()
                if d.is_dir() and not d.is_symlink() and _ID.match(d.name)
            ]
            mtimes = {d: d.stat().st_mtime for d in entries}
            entries.sort(key=mtimes.__getitem__)
            sizes = {d: sum(f.stat().st_size for f in d.iterdir() if f.is_file()) for d in entries}
            total, count = sum(sizes.values()), len(entries)
            removed = []
            for oldest in (d for d in entries if d.name != keep and d.name not in self._active):
                within = count <= self.max_requests and total <= self.max_bytes
                if within and not self._expired(mtimes[oldest]):
                    break
                total -= sizes[oldest]
                count -= 1
                shutil.rmtree(oldest, ignore_errors=True)
                removed.append(oldest.name)
            return removed

    def resolve(self, request_id: str, name: str) -> Path | None:
        """The file for (id, name), or None for anything malformed, missing, linked or outside."""
        if not (_ID.match(request_id) and _NAME.match(name)):
            return None
        candidate = self.root / request_id / name
        if candidate.is_symlink() or candidate.parent.is_symlink() or not candidate.is_file():
            return None
        if self._expired(candidate.stat().st_mtime):  # past the age bound, even before deletion
            return None
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            return None
        return resolved
