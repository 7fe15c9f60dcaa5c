"""Backends: how a loaded diffusers pipeline is prepared for fast CPU inference.

Interface shared by the server engine and the benchmark CLI (owned by the performance work):

- ``resolve_dtype(requested)`` → torch dtype ("auto" = bf16 where the CPU has bf16 instructions).
- ``prepare_pipeline(pipe, backend, dtype, sizes, batches)`` → the pipeline, optimised in place
  for ``backend``; ``sizes`` x ``batches`` are the shapes it will serve (int8 calibrates on them).
- ``BACKENDS`` (defined torch-free in engine.interface) lists the accepted names; ``"auto"``
  resolves to the measured default.
- ``missing_requirement(backend)`` → why this environment cannot run it (None if it can).
"""

from __future__ import annotations

import importlib.util
import logging

import torch

from inference_server.engine.interface import BACKENDS

log = logging.getLogger(__name__)


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
    """Map "auto" to the default chosen by the measurements in BENCHMARKS.md: ``packed``
    (faster per image than compile, eager's start-up), or eager where PyTorch lacks oneDNN."""
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    if requested != "auto":
        return requested
    return "packed" if torch.backends.mkldnn.is_available() else "eager"


def missing_requirement(backend: str) -> str | None:
    """Why ``backend`` cannot run in this environment, or None; checked at server start so a
    pod whose image lacks a backend's toolchain exits with that reason (the operator shows it
    in the resource's status) instead of failing minutes later inside the warm-up."""
    backend = resolve_backend(backend)
    if backend == "packed" and not torch.backends.mkldnn.is_available():
        return "backend 'packed' needs PyTorch built with oneDNN (mkldnn); use backend eager"
    if backend in ("compile", "int8"):
        compiler = _cxx_compiler_problem()
        if compiler:
            return (
                f"backend {backend!r} needs a C++ compiler for inductor's kernels ({compiler}); "
                "install g++ (the t2i-server image has it) or set CXX, or use backend packed"
            )
    if backend == "int8" and importlib.util.find_spec("torchao") is None:
        return "backend 'int8' needs torchao (pip install 't2i-operator[int8]')"
    if backend == "int8":
        from inference_server.engine.int8 import quantize_vae_decoder

        try:
            quantize_vae_decoder()
        except ValueError as error:  # a bad T2I_INT8_VAE
            return str(error)
    if backend == "ipex" and importlib.util.find_spec("intel_extension_for_pytorch") is None:
        return (
            "backend 'ipex' needs intel_extension_for_pytorch, with torch 2.8, transformers 4.55 "
            "and diffusers <= 0.35 in its own environment (see docs/performance.md)"
        )
    return None


def _cxx_compiler_problem() -> str | None:
    """What inductor's own compiler search reports, so this check and inductor agree."""
    from torch._inductor import config as inductor_config
    from torch._inductor.cpp_builder import get_cpp_compiler
    from torch._inductor.exc import InvalidCxxCompiler

    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        searched = [c for c in inductor_config.cpp.cxx if c] or ["g++"]
        return f"none found: tried {', '.join(searched)}"
    return None


def prepare_pipeline(
    pipe,
    backend: str,
    dtype: torch.dtype,
    sizes: tuple[tuple[int, int], ...] = ((512, 512),),
    batches: tuple[int, ...] = (1,),
):
    """Optimise ``pipe`` in place for ``backend`` and return it."""
    backend = resolve_backend(backend)
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    if backend == "packed":
        return _prepare_packed(pipe)
    if backend == "compile":
        _configure_inductor()
        pipe.unet = torch.compile(pipe.unet, dynamic=False)
        pipe.vae.decoder = torch.compile(pipe.vae.decoder, dynamic=False)
        return pipe
    if backend == "ipex":
        return _prepare_ipex(pipe, dtype, sizes, batches)
    if backend == "int8":
        from inference_server.engine.int8 import prepare_int8

        _configure_inductor()
        return prepare_int8(pipe, dtype, sizes, batches)
    return pipe


def _prepare_packed(pipe):
    """Every Linear/Conv2d of the four networks on oneDNN-packed weights (see engine.packed),
    SDXL's transformer and ResNet blocks with their elementwise tails fused into those GEMMs
    (see engine.fused)."""
    if not torch.backends.mkldnn.is_available():
        raise RuntimeError("backend 'packed' needs PyTorch built with oneDNN (mkldnn); use eager")
    from inference_server.engine.fused import fuse_blocks
    from inference_server.engine.packed import pack_weights

    fused = sum(fuse_blocks(getattr(pipe, name)) for name in ("unet", "vae"))
    networks = ("unet", "vae", "text_encoder", "text_encoder_2")
    packed = sum(pack_weights(getattr(pipe, name)) for name in networks)
    # SDXL-Turbo fuses 52 (UNet: 11 transformers, 17 ResNets; VAE: 24 ResNets). Fewer means some
    # blocks kept diffusers' modules (LoRA layers, custom attention processors) and run slower.
    log.info("packed backend: %d blocks fused, %d other Linear/Conv2d packed", fused, packed)
    return pipe


def _configure_inductor() -> None:
    """Inductor with frozen, prepacked weights: static shapes, so one graph per (size, batch),
    compiled on the first call — the engine's warm-up before readiness pays that cost. The VAE
    decoder is compiled too: ~28 % of a 512x512 image's FLOPs, and its full-resolution
    GroupNorm/SiLU passes are memory-bound, which inductor fuses around the oneDNN convs."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    inductor_config.cpp.weight_prepack = True
    # Not freezing_discard_parameters: it would halve weight memory, but every later graph
    # (the next warmed batch size, a size first requested after start-up) must re-freeze from
    # the original parameters, and fails once they are discarded.


def _prepare_ipex(pipe, dtype: torch.dtype, sizes, batches):
    """The tutorial's recipe: ``ipex.optimize``, then a TorchScript trace under autocast and
    ``torch.jit.freeze``, one graph per warmed (size, batch), all built at start-up (as the
    tutorial's server did). The eager UNet is then released — frozen graphs hold their own
    weights, and keeping both needed ~16 GB at 512x512 — so unwarmed shapes are refused.
    IPEX needs its own env (torch 2.8, transformers < 5): ``bash hack/ipex-venv.sh``."""
    try:
        import intel_extension_for_pytorch as ipex  # type: ignore[import-not-found]
    except Exception as error:  # ImportError, or its NameError beside transformers 5
        raise RuntimeError(
            "backend 'ipex' needs intel_extension_for_pytorch, which is not importable here "
            f"({type(error).__name__}: {error}); it needs torch 2.8, transformers 4.55, "
            "diffusers <= 0.35 in its own environment"
        ) from error
    from inference_server.engine.unet_graph import (
        GraphUNet,
        UNetCore,
        record_unet_inputs,
        shape_key,
    )

    examples = {}
    for size in sizes:
        for batch in batches:
            for args in record_unet_inputs(pipe, size, batch, steps=1):
                examples.setdefault(shape_key(args), args)
    unet = ipex.optimize(pipe.unet.eval(), dtype=dtype, inplace=True)
    pipe.vae = ipex.optimize(pipe.vae.eval(), dtype=dtype, inplace=True)
    core = UNetCore(unet).eval()  # eval before freeze, or freeze refuses the module
    autocast = dtype != torch.float32
    graphs = {}
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=autocast):
        for key, example in examples.items():
            graph = torch.jit.freeze(torch.jit.trace(core, example, check_trace=False))

            def run(*args, graph=graph):
                with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=autocast):
                    return graph(*args)

            graphs[key] = run

    def refuse(example: tuple):
        raise ValueError(
            "backend 'ipex' traced the UNet only for the warmed sizes and batches; "
            f"add this one to --warmup-sizes / --max-batch (inputs {shape_key(example)})"
        )

    pipe.unet = GraphUNet(unet, refuse, dtype, graphs)
    return pipe
