"""Turn one validated request into queued calls, wait for them, and store the PNGs.

Shared by both HTTP APIs. ``number`` pipeline calls of ``batch`` images each: image ``j`` of call
``i`` is ``<i>_<j>.png`` with seed ``seed + i x batch + j``, so any image can be reproduced.
Times are client-visible (queueing included): an image's latency runs from submission until its
call finished, and the request's generation time until the last one did — so for one call the
two are equal, as in the tutorial's response.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from inference_server.batcher import Batcher, Call
from inference_server.store import ImageStore


class NotReadyError(RuntimeError):
    """The model is still loading or warming up."""


class GenerationTimeoutError(RuntimeError):
    """The request waited longer than the configured timeout."""


@dataclass(frozen=True)
class GenerationParams:
    prompt: str
    number: int
    batch: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    negative_prompt: str = ""
    seed: int | None = None


@dataclass(frozen=True)
class GeneratedImage:
    call_index: int
    image_index: int
    name: str
    latency_seconds: float  # from submission until its pipeline call finished (queueing included)
    seed: int
    image: object


@dataclass(frozen=True)
class GenerationResult:
    request_id: str
    images: list[GeneratedImage]
    seconds: float  # until the last image was ready: equals latency_seconds for one call
    seed: int


def generate(
    params: GenerationParams,
    batcher: Batcher,
    store: ImageStore,
    ready: bool,
    timeout: float,
) -> GenerationResult:
    if not ready:
        raise NotReadyError("model is loading")
    base_seed = params.seed if params.seed is not None else random.randrange(2**31)
    calls = [
        Call(
            prompts=[params.prompt] * params.batch,
            negative_prompt=params.negative_prompt,
            seeds=[base_seed + i * params.batch + j for j in range(params.batch)],
            width=params.width,
            height=params.height,
            steps=params.steps,
            guidance_scale=params.guidance_scale,
        )
        for i in range(params.number)
    ]
    start = time.perf_counter()
    batcher.submit(calls)
    deadline = start + timeout
    request_id = store.new_id()
    images: list[GeneratedImage] = []
    try:
        for i, call in enumerate(calls):
            try:
                result = call.future.result(timeout=max(0.0, deadline - time.perf_counter()))
            except FutureTimeout:
                for waiting in calls[i:]:
                    waiting.future.cancel()  # not started yet: the worker will skip it
                raise GenerationTimeoutError(
                    f"generation took longer than {timeout:.0f}s"
                ) from None
            for j, image in enumerate(result.images):
                name = f"{i}_{j}.png"
                store.save(request_id, name, image)
                latency = result.finished - start
                images.append(GeneratedImage(i, j, name, latency, call.seeds[j], image))
    finally:
        store.release(request_id)
    store.enforce_retention(keep=request_id)
    seconds = max(image.latency_seconds for image in images)
    return GenerationResult(request_id, images, seconds, base_seed)
