"""Prometheus metrics, recorded at the HTTP, queue, batcher and engine boundaries."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

# Every counter and histogram would otherwise export a `<name>_created` twin per label set:
# series a scraper stores and nobody queries (process-wide setting, hence at import).
disable_created_metrics()

_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """One registry per app, so several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_* (CPU seconds, resident memory, open fds, start time: restarts show as a
        # new start time) and python_info, which the default registry would have had.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "t2i_http_requests_total", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "t2i_queue_depth_images", "Images waiting for the worker", registry=self.registry
        )
        self.images = Counter(
            "t2i_images_generated_total", "Images generated", ["size"], registry=self.registry
        )
        self.request_latency = Histogram(
            "t2i_request_latency_seconds",
            "Generation request latency, queueing included",
            ["size"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "t2i_inference_seconds",
            "Seconds per pipeline call (one merged batch)",
            ["size"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "t2i_batch_size",
            "Images per pipeline call",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "t2i_requests_in_flight",
            "Generation requests admitted and not yet answered (queued, running or saving)",
            registry=self.registry,
        )
        self.rejected = Counter(
            "t2i_requests_rejected_total",
            "Generation requests refused before queueing",
            ["reason"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "t2i_ready", "1 when the model is loaded and warm", registry=self.registry
        )

    def observe_batch(self, size: int, seconds: float, image_size: str) -> None:
        self.batch_size.observe(size)
        self.inference_seconds.labels(image_size).observe(seconds)
        self.images.labels(image_size).inc(size)
