"""The attestation service behind ``POST /v1/attestation``: measurements taken once at start-up
(in a thread, so probes answer while a large model is hashed), a token bucket so quote
generation cannot be used to load the host, and the evidence document. No Flask here."""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from inference_server.attestation.layout import LAYOUT, Measurements, report_data
from inference_server.attestation.manifest import model_digest
from inference_server.attestation.provider import QuoteProvider

log = logging.getLogger(__name__)

EXTENSION = "t2i_attestation"  # the Attestor's key in app.extensions


def server_version() -> str:
    try:
        return metadata.version("t2i-operator")
    except metadata.PackageNotFoundError:
        return "unknown"


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"attestation rate limit reached; retry in {retry_after}s")
        self.retry_after = retry_after


class NotMeasured(Exception):
    """The model files are still being hashed, or hashing failed (the message says which)."""


@dataclass
class TokenBucket:
    """``per_minute`` requests on average, bursts of ``burst``; thread-safe."""

    per_minute: float
    burst: int
    clock: object = time.monotonic
    _tokens: float = field(init=False)
    _at: float = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._at = self.clock()

    def take(self) -> None:
        with self._lock:
            now = self.clock()
            rate = self.per_minute / 60.0
            self._tokens = min(self.burst, self._tokens + (now - self._at) * rate)
            self._at = now
            if self._tokens < 1:
                raise RateLimited(max(1, math.ceil((1 - self._tokens) / rate)))
            self._tokens -= 1


class Attestor:
    def __init__(
        self,
        provider: QuoteProvider,
        model_dir: Path,
        image_digest: str = "",
        per_minute: float = 30,
        burst: int = 5,
        version: str | None = None,
    ) -> None:
        self.provider = provider
        self.model_dir = model_dir
        self.image_digest = image_digest
        self.version = version or server_version()
        self.bucket = TokenBucket(per_minute, burst)
        self.measurements: Measurements | None = None
        self.model_files = 0
        self.measure_error: str | None = None
        self._measured = threading.Event()
        # One quote at a time: the quoting enclave behind configfs-tsm is a shared resource.
        self._quote_lock = threading.Lock()

    def start(self, background: bool = True) -> None:
        if not background:
            self._measure()
            return
        threading.Thread(target=self._measure, name="model-digest", daemon=True).start()

    def wait_measured(self, timeout: float | None = None) -> bool:
        return self._measured.wait(timeout)

    def _measure(self) -> None:
        try:
            digest, files = model_digest(self.model_dir)
            self.model_files = files
            self.measurements = Measurements(digest, self.version, self.image_digest)
            log.info("model files measured", extra={"model_digest": digest, "files": files})
        except OSError as error:
            self.measure_error = f"model files could not be measured: {error.strerror or error}"
            log.error(self.measure_error)
        finally:
            self._measured.set()

    def evidence(self, nonce: bytes) -> dict:
        """The response document; raises RateLimited, NotMeasured, NotInTeeError or
        AttestationError (mapped to HTTP by the route)."""
        if self.measurements is None:
            raise NotMeasured(self.measure_error or "model files are still being measured")
        self.bucket.take()
        data = report_data(nonce, self.measurements)
        with self._quote_lock:
            quote = self.provider.quote(data)
        return {
            "layout": LAYOUT,
            "nonce": nonce.hex(),
            "provider": quote.provider,
            "quote": base64.b64encode(quote.blob).decode("ascii"),
            "report_data": data.hex(),
            "measurements": {
                "model_digest": self.measurements.model_digest,
                "model_files": self.model_files,
                "server_version": self.measurements.server_version,
                "image_digest": self.measurements.image_digest,
            },
            "created": int(time.time()),
        }
