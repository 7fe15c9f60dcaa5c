"""Generated images on disk: PNGs under the output directory, bounded, served only from inside.

The directory may be shared by several server processes (replicas mounting one ReadWriteMany
volume): any of them serves any request's images, and each one's retention pass is safe while
the others write. A request directory appears atomically with a ``.writing`` marker in it (made
under a temporary name, then renamed), the marker is touched by every save and removed on
release; retention never deletes a directory whose marker is fresh, whichever process owns it.
A marker untouched for ``writer_timeout`` seconds belongs to a killed process and is ignored.
"""

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
WRITING = ".writing"  # present (and fresh) while some process still writes the request
WRITER_TIMEOUT_SECONDS = 3600.0


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
        writer_timeout: float = WRITER_TIMEOUT_SECONDS,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.writer_timeout = writer_timeout
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
            if not directory.is_dir():
                self._create_with_marker(directory)
        (directory / WRITING).touch()  # fresh again: another process's retention keeps off
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

    def _create_with_marker(self, directory: Path) -> None:
        """``directory`` with its ``.writing`` marker already inside: made under a name
        retention ignores, then renamed, so no other process ever sees it without the marker."""
        staging = self.root / f".new-{uuid.uuid4().hex}"
        staging.mkdir()
        (staging / WRITING).touch()
        try:
            staging.rename(directory)
        except OSError:  # made meanwhile (same id twice): use it as it is
            shutil.rmtree(staging, ignore_errors=True)
            if not directory.is_dir():
                raise

    def release(self, request_id: str) -> None:
        """The request has written all it will write; retention may delete it from now on."""
        with self._lock:
            self._active.discard(request_id)
            if _ID.match(request_id):
                (self.root / request_id / WRITING).unlink(missing_ok=True)

    def _being_written(self, directory: Path) -> bool:
        """Some process (this one or another) still writes into ``directory``."""
        try:
            touched = (directory / WRITING).stat().st_mtime
        except FileNotFoundError:
            return False
        return touched >= time.time() - self.writer_timeout

    def _expired(self, mtime: float) -> bool:
        return self.max_age > 0 and mtime < time.time() - self.max_age

    def remove_partial_writes(self) -> int:
        """What killed processes left behind: temporary files and stale markers in directories
        no live writer owns, and staging directories older than ``writer_timeout``. Writers in
        other processes sharing the directory are left alone."""
        removed = 0
        for leftover in self.root.glob("*/.*.tmp"):
            directory = leftover.parent
            if _ID.match(directory.name) and not leftover.is_symlink():
                if directory.name in self._active or self._being_written(directory):
                    continue
                leftover.unlink(missing_ok=True)
                removed += 1
        for marker in self.root.glob(f"*/{WRITING}"):
            directory = marker.parent
            name = directory.name
            if _ID.match(name) and name not in self._active and not self._being_written(directory):
                marker.unlink(missing_ok=True)
        for staging in self.root.glob(".new-*"):
            try:
                old = staging.stat().st_mtime < time.time() - self.writer_timeout
            except FileNotFoundError:
                continue
            if old and staging.is_dir() and not staging.is_symlink():
                shutil.rmtree(staging, ignore_errors=True)
        return removed

    def enforce_retention(self, keep: str | None = None) -> list[str]:
        """Delete whole request directories, oldest first, until every bound holds. ``keep`` (the
        request just answered) is never deleted: its URLs are about to be handed out."""
        # The scan (a stat per file) runs outside the lock, so saves never wait behind it; only
        # the decisions and deletions, which must see the current set of writers, hold it.
        entries = [
            d
            for d in self.root.iterdir()
            if d.is_dir() and not d.is_symlink() and _ID.match(d.name)
        ]
        mtimes, sizes = {}, {}
        for d in entries:
            try:
                mtimes[d] = d.stat().st_mtime
                sizes[d] = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
            except FileNotFoundError:  # deleted meanwhile by a concurrent retention pass
                mtimes[d], sizes[d] = 0.0, 0
        entries.sort(key=mtimes.__getitem__)
        total, count = sum(sizes.values()), len(entries)
        with self._lock:
            removed = []
            deletable = (
                d
                for d in entries
                if d.name != keep and d.name not in self._active and not self._being_written(d)
            )
            for oldest in deletable:
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
        try:
            mtime = candidate.stat().st_mtime
        except FileNotFoundError:  # deleted meanwhile by a retention pass (any process's)
            return None
        if self._expired(mtime):  # past the age bound, even before deletion
            return None
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            return None
        return resolved
