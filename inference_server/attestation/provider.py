"""Quote providers: where TD evidence comes from.

``ConfigfsTsmProvider`` speaks the Linux configfs-tsm report ABI (kernel >= 6.7,
Documentation/ABI/testing/configfs-tsm): mkdir an entry under the report root, write the report
data to ``inblob``, read the quote from ``outblob``, then ``provider`` and ``generation``.
``generation`` counts writes to the entry; anything but our one write means another process
wrote the entry meanwhile, so the quote may not carry our report data: retry in a fresh entry,
then fail. ``NoTeeProvider`` never produces evidence: outside a TD the answer is "not in a TD",
never a made-up quote.
"""

from __future__ import annotations

import errno
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from inference_server.attestation.layout import REPORT_DATA_BYTES

log = logging.getLogger(__name__)

DEFAULT_REPORT_ROOT = Path("/sys/kernel/config/tsm/report")
OUTBLOB_MAX = 32 * 1024  # TSM_REPORT_OUTBLOB_MAX
# errno values reading outblob raises when the kernel has no TSM provider behind the ABI.
# Inside a TD the report root may still be missing from a container that does not mount the
# host's /sys/kernel/config: the message says both, the server cannot tell them apart.
NOT_IN_TD = "not running in a TD (or configfs is not mounted into the container)"
NO_PROVIDER_ERRNOS = frozenset({errno.ENXIO, errno.ENODEV, errno.ENOTTY, errno.EOPNOTSUPP})


@dataclass(frozen=True)
class Quote:
    blob: bytes
    provider: str  # e.g. "tdx_guest"
    generation: int


class NotInTeeError(Exception):
    """No TEE attestation interface here: a fact about the host, not a transient failure."""


class AttestationError(Exception):
    """The interface exists but did not produce usable evidence this time."""


class QuoteProvider(Protocol):
    name: str

    def quote(self, report_data: bytes) -> Quote: ...


class NoTeeProvider:
    name = "none"

    def __init__(self, why: str) -> None:
        self.why = why

    def quote(self, report_data: bytes) -> Quote:
        raise NotInTeeError(self.why)


class ConfigfsTsmProvider:
    name = "configfs-tsm"

    def __init__(self, root: Path, attempts: int = 3, attribute_wait: float = 1.0) -> None:
        self.root = root
        self.attempts = attempts
        # configfs creates an entry's attributes with the directory, so this wait ends at once
        # on a real kernel; it only bounds how long a user-space emulation may take.
        self.attribute_wait = attribute_wait

    def quote(self, report_data: bytes) -> Quote:
        if len(report_data) != REPORT_DATA_BYTES:
            raise ValueError(f"report data must be {REPORT_DATA_BYTES} bytes")
        if not self.root.is_dir():
            raise NotInTeeError(f"{NOT_IN_TD}: no configfs-tsm report interface at {self.root}")
        for attempt in range(1, self.attempts + 1):
            quote = self._once(report_data)
            if quote.generation == 1:
                return quote
            log.warning(
                "configfs-tsm entry written concurrently (generation %d); retrying",
                quote.generation,
                extra={"attempt": attempt},
            )
        raise AttestationError(
            f"configfs-tsm: another writer changed the report entry in {self.attempts} attempts"
        )

    def _once(self, report_data: bytes) -> Quote:
        entry = self.root / f"t2i-{uuid.uuid4().hex}"
        try:
            entry.mkdir()
        except OSError as error:
            raise AttestationError(f"configfs-tsm: cannot create a report entry: {error}") from None
        try:
            self._await_attributes(entry)
            try:
                (entry / "inblob").write_bytes(report_data)
                with (entry / "outblob").open("rb") as handle:
                    blob = handle.read(OUTBLOB_MAX + 1)
                provider = (entry / "provider").read_text().strip()
                generation = int((entry / "generation").read_text().strip())
            except OSError as error:
                if error.errno in NO_PROVIDER_ERRNOS:
                    raise NotInTeeError(f"configfs-tsm has no quote provider: {error}") from None
                raise AttestationError(f"configfs-tsm: {error}") from None
            except ValueError:
                raise AttestationError("configfs-tsm: generation is not a number") from None
            if not blob or len(blob) > OUTBLOB_MAX:
                raise AttestationError(f"configfs-tsm: outblob is {len(blob)} bytes")
            return Quote(blob=blob, provider=provider, generation=generation)
        finally:
            try:
                entry.rmdir()
            except OSError as error:
                log.debug("configfs-tsm: could not remove %s: %s", entry.name, error)

    def _await_attributes(self, entry: Path) -> None:
        deadline = time.monotonic() + self.attribute_wait
        while not all((entry / a).exists() for a in ("outblob", "provider", "generation")):
            if time.monotonic() > deadline:
                raise AttestationError(f"configfs-tsm: {entry.name} has no report attributes")
            time.sleep(0.001)


def detect(root: Path = DEFAULT_REPORT_ROOT) -> QuoteProvider:
    """configfs-tsm when its report directory exists, else the provider that says why not."""
    if root.is_dir():
        return ConfigfsTsmProvider(root)
    return NoTeeProvider(f"{NOT_IN_TD}: no configfs-tsm report interface at {root}")
