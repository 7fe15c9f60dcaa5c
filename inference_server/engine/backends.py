"""Backends: how a loaded diffusers pipeline is prepared for fast CPU inference.

Interface shared by the server engine and the benchmark CLI (owned by the performance work):

- ``resolve_dtype(requested)`` → torch dtype ("auto" = bf16 where the CPU has bf16 instructions).
- ``prepare_pipeline(pipe, backend, dtype)`` → the pipeline, optimised in place for ``backend``.
- ``BACKENDS`` lists the accepted names; ``"auto"`` resolves to the measured default.
"""

from __future__ import annotations

import torch

BACKENDS = ("auto", "eager", "compile", "ipex", "int8")


def cpu_has_fast_bf16() -> bool:
    """True when the CPU executes bf16 natively (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(requested: str = "auto") -> torch.dtype:
    """bf16 on CPUs that run it natively, fp32 elsewhere (emulated bf16 is slower than fp32)."""
    if requested == "bf16":
        return torch.bfloat16
    if requested == "fp32":
        return torch.float32
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


def resolve_backend(requested: str) -> str:
    """Map "auto" to the default backend chosen by the measurements in BENCHMARKS.md."""
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    return "eager" if requested == "auto" else requested


def prepare_pipeline(pipe, backend: str, dtype: torch.dtype):
    """Optimise ``pipe`` in place for ``backend`` and return it."""
    backend = resolve_backend(backend)
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    if backend == "compile":
        # Inductor with frozen, prepacked weights: static shapes, so one graph per (size, batch),
        # compiled on the first call — the engine's warm-up before readiness pays that cost.
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        inductor_config.cpp.weight_prepack = True
        pipe.unet = torch.compile(pipe.unet, dynamic=False)
        return pipe
    if backend == "ipex":
        return _prepare_ipex(pipe, dtype)
    if backend == "int8":
        # Not measured yet (issue 8 target 3): refuse rather than serve an unmeasured quality loss.
        raise NotImplementedError("backend 'int8' is not implemented yet; use eager or compile")
    return pipe


def _prepare_ipex(pipe, dtype: torch.dtype):
    """The tutorial's recipe; IPEX needs its own env (torch 2.8, transformers < 5)."""
    try:
        import intel_extension_for_pytorch as ipex  # type: ignore[import-not-found]
    except Exception as error:  # ImportError, or its NameError beside transformers 5
        raise RuntimeError(
            "backend 'ipex' needs intel_extension_for_pytorch, which is not importable here "
            f"({type(error).__name__}: {error}); it needs torch 2.8, transformers 4.55, "
            "diffusers <= 0.35 in its own environment"
        ) from error
    pipe.unet = ipex.optimize(pipe.unet.eval(), dtype=dtype, inplace=True)
    pipe.vae = ipex.optimize(pipe.vae.eval(), dtype=dtype, inplace=True)
    return pipe
