"""One benchmarked pipeline: load → count FLOPs → prepare the backend → warm up → timed calls.

Used in-process by ``t2i-bench`` and inside each ``--compare`` worker, so both modes time
exactly the same path as the server (loader, ``prepare_pipeline``, a stock diffusers call).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from inference_server.engine.allocator import active_allocator
from inference_server.engine.backends import prepare_pipeline, resolve_dtype


def build_pipeline(args: argparse.Namespace, dtype: torch.dtype):
    """Load ``--model`` through the server's loader, or the tiny/synthetic stand-in."""
    from inference_server.engine.loader import load_pipeline

    if args.synthetic:
        from inference_server.bench.synthetic import build_synthetic_sdxl

        return build_synthetic_sdxl(dtype)
    if args.model is None:
        from inference_server.tiny_model import save_tiny_pipeline

        args.model = str(save_tiny_pipeline(Path(tempfile.mkdtemp(prefix="t2i-bench-")) / "tiny"))
    return load_pipeline(Path(args.model), dtype)


def call(pipe, args: argparse.Namespace, seed: int = 0) -> list:
    """One pipeline call at the benchmark's shape; the seed fixes the initial latents."""
    return pipe(
        prompt=[args.prompt] * args.batch,
        num_inference_steps=args.step,
        guidance_scale=0.0,
        height=args.height,
        width=args.width,
        generator=torch.Generator().manual_seed(seed),
    ).images


def flops_per_image(pipe, args: argparse.Namespace) -> dict:
    """FLOPs of one full call split by component (FlopCounterMode), divided by the batch.

    Counted on the eager pipeline, before a backend replaces modules with graphs the counter
    cannot see into: FLOPs are a property of the model and the shape, not of the backend."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        call(pipe, args)
    by_module = counter.get_flop_counts()
    parts = {
        name: sum(by_module.get(key, {}).values()) / args.batch
        for name, key in (
            ("unet_all_steps", "UNet2DConditionModel"),
            ("text_encoder", "CLIPTextModel"),
            ("text_encoder_2", "CLIPTextModelWithProjection"),
        )
    }
    parts["total"] = counter.get_total_flops() / args.batch
    # vae.decode is a method, not a module call, so the tracker does not name it: it is the rest.
    parts["vae_decode_and_rest"] = parts["total"] - sum(v for k, v in parts.items() if k != "total")
    return parts


class BenchSession:
    """A prepared, warmed pipeline; ``startup_s`` is what a serving pod would wait for."""

    def __init__(self, args: argparse.Namespace) -> None:
        if args.threads:
            torch.set_num_threads(args.threads)
        torch.manual_seed(0)  # synthetic weights: the same in every process of one version
        self.args = args
        self.dtype = resolve_dtype("bf16" if args.bf16 else "fp32")
        start = time.perf_counter()
        pipe = build_pipeline(args, self.dtype)
        self.load_s = time.perf_counter() - start
        self.flops = flops_per_image(pipe, args) if args.flops else None
        start = time.perf_counter()
        shape = ((args.width, args.height),)
        self.pipe = prepare_pipeline(pipe, args.backend, self.dtype, shape, (args.batch,))
        self.prepare_s = time.perf_counter() - start
        self.warmup_s, self.images = self.timed_call()
        self.startup_s = self.load_s + self.prepare_s + self.warmup_s

    def timed_call(self, seed: int = 0) -> tuple[float, list]:
        with torch.inference_mode():
            start = time.perf_counter()
            images = call(self.pipe, self.args, seed)
            return time.perf_counter() - start, images

    def describe(self) -> dict:
        return {
            "backend": self.args.backend,
            "dtype": str(self.dtype).removeprefix("torch."),
            "height": self.args.height,
            "width": self.args.width,
            "batch": self.args.batch,
            "steps": self.args.step,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "allocator": active_allocator(),
        }
