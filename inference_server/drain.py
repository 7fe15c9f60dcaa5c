"""Graceful drain on SIGTERM, bounded by ``--drain-timeout``.

Order matters for Kubernetes: readiness fails at once (the pod leaves the Service's endpoints),
new generation requests get a clean 503 while probes keep answering, admitted requests run to
completion; whatever is still unfinished near the bound is failed with a 503 so every admitted
client gets an answer, then the listener closes once responses are flushed. A handler is
installed for SIGTERM, so this also works as PID 1, where the default action is ignored.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Drainer:
    def __init__(self, runtime, server, timeout: float) -> None:
        self.runtime = runtime
        self.server = server
        self.timeout = timeout
        self.stopped = threading.Event()
        self._begun = threading.Lock()
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: self.begin(signal.Signals(signum).name))

    def begin(self, reason: str = "SIGTERM") -> None:
        """Idempotent; safe from a signal handler (only starts a thread)."""
        if not self._begun.acquire(blocking=False):
            return
        self._thread = threading.Thread(target=self._run, args=(reason,), name="drain")
        self._thread.start()

    def _run(self, reason: str) -> None:
        start = time.monotonic()
        deadline = start + self.timeout
        margin = min(3.0, self.timeout / 5)  # kept for failing leftovers and flushing
        runtime = self.runtime
        runtime.begin_drain()
        log.info(
            "draining",
            extra={"signal": reason, "in_flight": runtime.in_flight, "bound": self.timeout},
        )
        _wait(lambda: runtime.in_flight == 0, deadline - margin)
        if runtime.in_flight:
            failed = runtime.batcher.abort("server is shutting down")
            log.warning("drain bound reached: failing unfinished work", extra={"calls": failed})
        _wait(lambda: runtime.in_flight == 0 and not self.server.busy(), deadline)
        log.info(
            "drained",
            extra={"seconds": round(time.monotonic() - start, 3), "in_flight": runtime.in_flight},
        )
        self.stopped.set()
        self.server.wake()


def _wait(condition: Callable[[], bool], until: float) -> None:
    while not condition() and time.monotonic() < until:
        time.sleep(0.05)
