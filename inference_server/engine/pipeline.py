"""The engine: owns one loaded pipeline and turns a batch of prompts into PIL images."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from inference_server.engine.allocator import TCMALLOC_HINT, active_allocator
from inference_server.engine.backends import prepare_pipeline, resolve_backend, resolve_dtype
from inference_server.engine.interface import BatchRequest
from inference_server.engine.loader import load_pipeline
from inference_server.engine.threads import default_thread_count

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    model_dir: Path
    model_name: str = "stabilityai/sdxl-turbo"
    backend: str = "auto"
    dtype: str = "auto"
    threads: int = 0
    warmup_sizes: tuple[tuple[int, int], ...] = ((512, 512),)
    warmup_batches: tuple[int, ...] = (1,)


# Backends that build one graph per input shape: every served (size, batch) is warmed up.
STATIC_SHAPE_BACKENDS = ("compile", "ipex", "int8")


def warmup_batches(backend: str, max_batch: int) -> tuple[int, ...]:
    """Batch sizes to warm: all of 1..max_batch where shapes are static, else just 1."""
    if resolve_backend(backend) in STATIC_SHAPE_BACKENDS:
        return tuple(range(1, max_batch + 1))
    return (1,)


class DiffusersEngine:
    """Loads, prepares and warms the pipeline; ``generate`` must be called from one thread."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.pipe = None
        self.ready = threading.Event()
        # What the status endpoint shows once loaded (the resolved backend, not "auto").
        self.description: dict[str, object] = {}

    def load(self) -> None:
        """Load + optimise + warm up; only then is the engine ready (readiness depends on it)."""
        started = time.perf_counter()
        torch.set_num_threads(default_thread_count(self.config.threads))
        dtype = resolve_dtype(self.config.dtype)
        backend = resolve_backend(self.config.backend)
        allocator = active_allocator()
        if allocator == "glibc":
            log.warning("malloc is glibc's: slower per image than tcmalloc; set %s",
                        TCMALLOC_HINT)  # fmt: skip
        pipe = load_pipeline(self.config.model_dir, dtype)
        self.pipe = prepare_pipeline(
            pipe,
            backend,
            dtype,
            self.config.warmup_sizes,
            self.config.warmup_batches,
        )
        for width, height in self.config.warmup_sizes:
            for size in self.config.warmup_batches:
                prompts, seeds = ["warm-up"] * size, list(range(size))
                self.generate(BatchRequest(prompts, [""] * size, seeds, width, height, 1, 0.0))
        self.description = {
            "backend": backend,
            "dtype": str(dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(),
        }
        self.ready.set()
        log.info(
            "engine ready",
            extra={
                **self.description,
                "allocator": allocator,
                "startup_s": round(time.perf_counter() - started, 1),
            },
        )

    def generate(self, batch: BatchRequest) -> list:
        """Run one pipeline call; per-image generators keep seeds independent inside a batch."""
        if self.pipe is None:
            raise RuntimeError("engine not loaded")
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in batch.seeds]
        negative = batch.negative_prompts if any(batch.negative_prompts) else None
        with torch.inference_mode():
            images = self.pipe(
                prompt=batch.prompts,
                negative_prompt=negative,
                num_inference_steps=batch.steps,
                guidance_scale=batch.guidance_scale,
                width=batch.width,
                height=batch.height,
                generator=generators,
            ).images
        return images
