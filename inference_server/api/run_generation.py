"""The one place the HTTP layer calls generation and maps its domain errors to HTTP."""

from __future__ import annotations

import logging
import time

from inference_server.api.errors import ApiError
from inference_server.batcher import QueueFullError, ShuttingDownError, WorkerDiedError
from inference_server.generation import (
    GenerationParams,
    GenerationResult,
    GenerationTimeoutError,
    NotReadyError,
    generate,
)

log = logging.getLogger("inference_server.requests")


def run_generation(runtime, params: GenerationParams, size: str) -> GenerationResult:
    start = time.perf_counter()
    runtime.enter()  # before the draining check: a drain then waits for this request
    try:
        if runtime.draining.is_set():
            raise ShuttingDownError("server is shutting down")
        result = generate(
            params,
            runtime.batcher,
            runtime.store,
            runtime.is_ready(),
            runtime.config.request_timeout_seconds,
        )
    except (NotReadyError, WorkerDiedError):
        runtime.metrics.rejected.labels("not_ready").inc()
        raise ApiError(
            503, "model is loading; retry later", headers={"Retry-After": "10"}, code="not_ready"
        ) from None
    except ShuttingDownError:
        runtime.metrics.rejected.labels("shutting_down").inc()
        raise ApiError(
            503,
            "server is shutting down; retry (another replica will answer)",
            headers={"Retry-After": "1"},
            code="shutting_down",
        ) from None
    except QueueFullError as error:
        runtime.metrics.rejected.labels("queue_full").inc()
        raise ApiError(
            429, f"{error}; retry later", headers={"Retry-After": "5"}, code="rate_limit_exceeded"
        ) from None
    except GenerationTimeoutError as error:
        raise ApiError(504, str(error), code="timeout") from None
    finally:
        runtime.leave()
    runtime.metrics.request_latency.labels(size).observe(time.perf_counter() - start)
    extra = {"prompt": params.prompt} if runtime.config.log_prompts else {}
    log.info(
        "generated",
        extra={
            "request_id": result.request_id,
            "images": len(result.images),
            "size": size,
            "steps": params.steps,
            "seconds": round(result.seconds, 3),
            **extra,
        },
    )
    return result
