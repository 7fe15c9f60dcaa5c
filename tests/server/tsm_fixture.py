"""A directory tree that behaves like configfs-tsm's report ABI, for machines without a TD.

Real configfs creates an entry's attributes on mkdir and produces the quote when ``outblob`` is
read. Here a thread does the kernel's part: it populates each new entry (``provider``,
``generation`` = 0, an empty ``inblob``, and ``outblob`` as a FIFO, so a reader blocks as it
would while the TD quote is generated), and when a reader opens ``outblob`` it reads ``inblob``,
sets ``generation`` and writes a TDX-shaped quote (version 4 header, TEE type 0x81) whose
REPORTDATA is exactly what was written to ``inblob`` — so binding checks downstream are real.
The FIFOs also work across processes: a ``t2i-server`` subprocess can use the same tree.

Knobs model what the ABI allows to go wrong: another writer touching the entry (``generation``
> 1), the quote provider failing (the read gets nothing), a stale quote (REPORTDATA of someone
else's request), more than 64 bytes in ``inblob`` (the kernel refuses the write with EINVAL; we
refuse to quote it).
"""

from __future__ import annotations

import errno
import os
import struct
import threading
from pathlib import Path

QUOTE_HEADER = 48
BODY = 584
REPORT_DATA_AT = QUOTE_HEADER + 520


def tdx_quote(report_data: bytes, version: int = 4) -> bytes:
    """Header + TD report body with ``report_data`` + an empty signature section."""
    header = struct.pack("<HHI", version, 2, 0x81) + bytes(QUOTE_HEADER - 8)
    body = bytearray(BODY)
    body[520:584] = report_data.ljust(64, b"\0")
    prefix = struct.pack("<HI", 2, BODY) if version == 5 else b""
    return header + prefix + bytes(body) + struct.pack("<I", 0)


class ConfigfsTsm:
    def __init__(
        self, root: Path, provider: str = "tdx_guest", poll_seconds: float = 0.0005
    ) -> None:
        self.root = root
        self.poll_seconds = poll_seconds  # how soon "the kernel" notices a new entry
        self.provider = provider
        self.concurrent_writers = 0  # next N quotes: another process wrote the entry too
        self.failures = 0  # next N quotes: the provider fails (outblob reads empty)
        self.stale_report_data: bytes | None = None  # quote someone else's report data
        self.quotes: list[bytes] = []  # inblob contents quoted, in order
        root.mkdir(parents=True, exist_ok=True)
        self._populated: set[str] = set()
        self._served: set[str] = set()  # one quote per entry: our provider reads outblob once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="configfs-tsm", daemon=True)

    def __enter__(self) -> ConfigfsTsm:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in list(self.root.iterdir()) if self.root.is_dir() else []:
                if not entry.is_dir():
                    continue
                if entry.name not in self._populated:
                    self._populate(entry)
                if entry.name not in self._served:
                    self._serve(entry)
            self._stop.wait(self.poll_seconds)

    def _populate(self, entry: Path) -> None:
        (entry / "inblob").touch()
        (entry / "generation").write_text("0\n")
        os.mkfifo(entry / "outblob")
        (entry / "provider").write_text(self.provider + "\n")
        self._populated.add(entry.name)

    def _serve(self, entry: Path) -> None:
        try:
            fd = os.open(entry / "outblob", os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno in (errno.ENXIO, errno.ENOENT):
                return  # no reader yet (ENXIO), or the entry is gone
            raise
        self._served.add(entry.name)
        with os.fdopen(fd, "wb") as out:
            inblob = (entry / "inblob").read_bytes()
            writes = 1
            if self.concurrent_writers:
                self.concurrent_writers -= 1
                writes = 2
            (entry / "generation").write_text(f"{writes}\n")
            if self.failures:
                self.failures -= 1
                return
            if len(inblob) > 64:
                return
            self.quotes.append(inblob)
            os.set_blocking(fd, True)
            out.write(tdx_quote(self.stale_report_data or inblob))
