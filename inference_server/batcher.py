"""One generation worker with a bounded queue that merges compatible calls into one batch.

Why one thread: a diffusers pipeline (its scheduler in particular) is mutable per call and one
model copy per worker multiplies memory; merging concurrent requests with the same size and steps
into one forward pass raises throughput on CPU.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

from inference_server.engine.interface import BatchRequest, Engine

log = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """More work is queued than the server accepts; the client should retry later."""


class ShuttingDownError(RuntimeError):
    """The server is draining: queued or unfinished work is failed so its client gets a 503."""


class WorkerDiedError(RuntimeError):
    """The generation worker thread ended; the request cannot be served by this process."""


@dataclass
class Call:
    """One pipeline call a request asks for: ``len(prompts)`` images of one size and steps."""

    prompts: list[str]
    negative_prompt: str
    seeds: list[int]
    width: int
    height: int
    steps: int
    guidance_scale: float
    future: Future = field(default_factory=Future)

    @property
    def key(self) -> tuple:
        return (self.width, self.height, self.steps, self.guidance_scale)


@dataclass(frozen=True)
class CallResult:
    images: list
    seconds: float  # the pipeline call's own time
    batch_size: int  # images in the merged pipeline call
    finished: float  # time.perf_counter() when the images were ready


class Batcher:
    """Accepts calls (all-or-nothing per request), runs them on one thread, in merged batches."""

    def __init__(
        self, engine: Engine, max_batch: int = 4, max_queue: int = 64, metrics=None
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.metrics = metrics
        self._pending: deque[Call] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._dead = False
        self._closed: str | None = None  # set by abort(): no new work, reason for refusals
        self._running: list[Call] = []
        self._thread = threading.Thread(target=self._run, name="generation-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=30)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def depth(self) -> int:
        with self._cond:
            return sum(len(call.prompts) for call in self._pending)

    def submit(self, calls: list[Call]) -> None:
        """Queue every call of one request, or none of them (a request is never half-accepted)."""
        images = sum(len(call.prompts) for call in calls)
        with self._cond:
            if self._dead:
                raise WorkerDiedError("generation worker died")
            if self._closed:
                raise ShuttingDownError(self._closed)
            queued = sum(len(call.prompts) for call in self._pending)
            if queued + images > self.max_queue:
                raise QueueFullError(
                    f"queue full ({queued} images waiting, limit {self.max_queue})"
                )
            self._pending.extend(calls)
            self._cond.notify()
        self._observe_depth()

    def abort(self, reason: str) -> int:
        """Fail every queued and running call now (the drain bound is reached); the batch in the
        pipeline finishes on its own, its results are dropped. Returns the calls failed."""
        with self._cond:
            self._closed = reason
            waiting = self._running + list(self._pending)
            self._pending.clear()
        failed = 0
        for call in waiting:
            if _fail(call.future, ShuttingDownError(reason)):
                failed += 1
        self._observe_depth()
        return failed

    def _take_batch(self) -> list[Call]:
        """First call in line plus later compatible calls while the batch has room (FIFO order).

        Calls whose client gave up (future cancelled on timeout) are dropped here; the others
        are marked running, so they can no longer be cancelled while the pipeline works."""
        while self._pending and not self._pending[0].future.set_running_or_notify_cancel():
            self._pending.popleft()
        if not self._pending:
            return []
        first = self._pending.popleft()
        batch, size = [first], len(first.prompts)
        for call in list(self._pending):
            if call.key == first.key and size + len(call.prompts) <= self.max_batch:
                self._pending.remove(call)
                if call.future.set_running_or_notify_cancel():
                    batch.append(call)
                    size += len(call.prompts)
        return batch

    def _run(self) -> None:
        """Serve batches; if the loop ever ends abnormally, fail every waiting call at once
        (in flight or queued) instead of leaving clients blocked until their timeout."""
        batch: list[Call] = []
        try:
            self._loop(batch)
        except BaseException:
            log.critical("generation worker died", exc_info=True)
            with self._cond:
                self._dead = True
                waiting = batch + list(self._pending)
                self._pending.clear()
            for call in waiting:
                if not call.future.done():
                    call.future.set_exception(WorkerDiedError("generation worker died"))
            raise

    def _loop(self, batch: list[Call]) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    for call in self._pending:
                        if call.future.set_running_or_notify_cancel():
                            call.future.set_exception(RuntimeError("server shutting down"))
                    return
                batch[:] = self._take_batch()
                self._running = list(batch)
            self._observe_depth()
            if batch:
                self._execute(batch)
            with self._cond:
                self._running = []

    def _execute(self, batch: list[Call]) -> None:
        """Run one merged batch. If it fails and holds several calls, each call is retried
        alone, so a request whose input breaks the engine fails by itself, not its batch."""
        first = batch[0]
        request = BatchRequest(
            prompts=[p for call in batch for p in call.prompts],
            negative_prompts=[call.negative_prompt for call in batch for _ in call.prompts],
            seeds=[s for call in batch for s in call.seeds],
            width=first.width,
            height=first.height,
            steps=first.steps,
            guidance_scale=first.guidance_scale,
        )
        start = time.perf_counter()
        try:
            images = self.engine.generate(request)
        except Exception as error:  # one failed batch must not kill the worker
            if len(batch) > 1:
                log.warning("merged batch failed; retrying its %d calls one by one", len(batch))
                for call in batch:
                    if not call.future.done():
                        self._execute([call])
                return
            log.exception("generation failed")
            _fail(first.future, error)
            return
        seconds = time.perf_counter() - start
        if self.metrics is not None:
            self.metrics.observe_batch(
                len(request.prompts), seconds, f"{first.width}x{first.height}"
            )
        finished = time.perf_counter()
        offset = 0
        for call in batch:
            count = len(call.prompts)
            result = CallResult(images[offset : offset + count], seconds, len(images), finished)
            with contextlib.suppress(InvalidStateError):  # abort() may have failed it meanwhile
                call.future.set_result(result)
            offset += count

    def _observe_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self.depth)


def _fail(future: Future, error: BaseException) -> bool:
    """Set ``error`` unless the future already has an outcome (abort and worker may race)."""
    try:
        future.set_exception(error)
        return True
    except InvalidStateError:
        return False
