"""waitress, adapted to the traffic a pod meets.

- Probes and metrics (``GET /healthz``, ``/readyz``, ``/metrics``) run on their own threads, so
  they never wait in line behind generation requests (kubelet would restart a busy, healthy pod).
- At the connection limit, the longest-idle connections (no request being served: idle
  keep-alives, half-sent requests) are closed to make room, so idle or slow clients cannot stop
  the server from accepting.
- Each request's environ carries the local address its TCP connection reached
  (``t2i.local_addr``): image URLs are built from it, never from the Host header.
- ``serve_until`` runs the loop until an event is set, so a drain can end it cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask

log = logging.getLogger(__name__)

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PROBE_THREADS = 2


class ProbeFirstDispatcher(ThreadedTaskDispatcher):
    """Routes a connection whose next request is a probe to a small pool of its own."""

    def __init__(self, threads: int, probe_threads: int = PROBE_THREADS) -> None:
        super().__init__()
        self.set_thread_count(threads)
        self.probes = ThreadedTaskDispatcher()
        self.probes.set_thread_count(probe_threads)

    def add_task(self, task) -> None:
        requests = getattr(task, "requests", None) or [None]
        first = requests[0]  # no lock: the caller may hold the channel's requests_lock
        command = getattr(first, "command", None)
        if command in ("GET", "HEAD") and getattr(first, "path", None) in PROBE_PATHS:
            self.probes.add_task(task)
        else:
            super().add_task(task)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        self.probes.shutdown(cancel_pending, timeout)
        return super().shutdown(cancel_pending, timeout)


class _Task(WSGITask):
    def get_environment(self) -> dict:
        environ = super().get_environment()
        if "t2i.local_addr" not in environ:
            with contextlib.suppress(OSError):  # OSError: the client is already gone
                environ["t2i.local_addr"] = tuple(self.channel.socket.getsockname()[:2])
        return environ


class _ErrorTask(ErrorTask):
    """A response waitress makes itself, without the app (malformed request 400, headers too
    large 431, body over its cap 413, unsupported transfer coding 501): reported to the server's
    hook so it is counted like the app's own responses."""

    def execute(self) -> None:
        super().execute()
        hook = getattr(self.channel.server, "on_transport_error", None)
        if hook is not None:
            hook(self.request.error.code)


class _Channel(HTTPChannel):
    task_class = _Task
    error_task_class = _ErrorTask


class Server(TcpWSGIServer):
    """One TCP listener with probe-first dispatch and idle-connection eviction."""

    channel_class = _Channel

    def readable(self) -> bool:
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            self.evict_idle()
        return super().readable()

    def idle_channels(self) -> list[HTTPChannel]:
        """Connections with nothing being served or written: safe to close."""
        return [
            c
            for c in list(self.active_channels.values())
            if not c.requests
            and not c.total_outbufs_len
            and not c.will_close
            and not c.close_when_flushed
        ]

    def evict_idle(self) -> int:
        """Close the longest-idle tenth of idle connections (at least one)."""
        idle = sorted(self.idle_channels(), key=lambda c: c.last_activity)
        victims = idle[: max(1, len(idle) // 10)]
        for channel in victims:
            # Not closed here: poll() may already hold its fd. Marked, it closes itself in this
            # loop pass (as waitress's own idle timeout does), and the listener accepts again.
            channel.will_close = True
        if victims:
            log.warning("connection limit reached: closing %d idle connection(s)", len(victims))
        return len(victims)

    def busy(self) -> bool:
        """Some connection has a request in service or a response not yet sent."""
        return any(c.requests or c.total_outbufs_len for c in list(self.active_channels.values()))

    def serve_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            wasyncore.loop(
                timeout=self.adj.asyncore_loop_timeout,
                map=self._map,
                use_poll=self.adj.asyncore_use_poll,
                count=1,
            )

    def wake(self) -> None:
        self.pull_trigger()

    def shutdown(self) -> None:
        self.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        for channel in list(self.active_channels.values()):
            channel.close()
        self.close()


def create(
    app,
    host: str,
    port: int,
    threads: int,
    on_transport_error: Callable[[int], None] | None = None,
    **adjustments,
) -> Server:
    """Bind ``host:port`` (its first address) and return the server, not yet serving;
    ``on_transport_error(status)`` is called for each response waitress makes itself."""
    adj = Adjustments(host=host, port=port, threads=threads, **adjustments)
    dispatcher = ProbeFirstDispatcher(threads)
    server = Server(app, map={}, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0])
    server.on_transport_error = on_transport_error
    return server
