"""Opt-in int8 UNet: PT2E static quantization with inductor's x86 quantizer (AMX-INT8/VNNI).

Why this path: on a Xeon with AMX, torchao's dynamic int8 linear compiled slower than bf16
(1.45 vs 1.83 TFLOPS on an SDXL-sized MLP), while PT2E + ``X86InductorQuantizer`` lowers to
oneDNN's fused int8 linear and conv kernels (4.0 TOPS on the same MLP). Static activation
scales need calibration: the UNet's real inputs are recorded while the bf16 pipeline makes
calibration images, then replayed through the observed fp32 graph. Quality differs from bf16;
``t2i-bench --compare`` reports the PSNR of the decoded image against bf16 on the same seed.

The VAE decoder (28 % of a 512x512 image's FLOPs) stays compiled bf16 unless
``T2I_INT8_VAE=on`` quantizes it the same way (calibrated on the calibration images' latents).
Measured on a Xeon with AMX and on an AMD EPYC without it (int8 matmuls 2.2x bf16 there), it was
no faster per image either way and deviated more (PSNR 37.2 vs 39.0 dB on the EPYC): its
full-resolution 128/256-channel convolutions sit between GroupNorm/SiLU passes, so each one
quantizes and dequantizes a large activation for little GEMM work. See BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import torch

from inference_server.engine.unet_graph import GraphUNet, UNetCore, record_unet_inputs

log = logging.getLogger(__name__)


INT8_VAE_MODES = ("off", "on")


def quantize_vae_decoder() -> bool:
    """Whether ``int8`` also quantizes the VAE decoder (``T2I_INT8_VAE``, see the module doc)."""
    mode = os.environ.get("T2I_INT8_VAE", "off").strip().lower()
    if mode not in INT8_VAE_MODES:
        raise ValueError(f"T2I_INT8_VAE must be one of {', '.join(INT8_VAE_MODES)}, not {mode!r}")
    return mode == "on"


def _unet_dynamic_shapes():
    """Batch and latent size left to export (Dim.AUTO): dynamic where the UNet allows it, so
    one calibrated graph can serve several sizes; specialised, not failed, where it does not."""
    from torch.export import Dim

    auto = {0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO}
    return (auto, None, {0: Dim.AUTO}, {0: Dim.AUTO}, {0: Dim.AUTO})


def _quantize_pt2e(core: torch.nn.Module, calibration: list[tuple], dynamic_shapes, name: str):
    """fp32 export → observe the calibration inputs → int8 graph (weights and activations)."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86q
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    try:
        exported = torch.export.export(core, calibration[0], dynamic_shapes=dynamic_shapes)
    except Exception as error:  # a diffusers/torch pair that cannot export it dynamic
        log.warning("dynamic export of the %s failed (%s); its int8 graph is static", name, error)
        exported = torch.export.export(core, calibration[0])
    quantizer = x86q.X86InductorQuantizer()
    quantizer.set_global(x86q.get_default_x86_inductor_quantization_config())
    observed = prepare_pt2e(exported.module(), quantizer)
    with torch.no_grad():
        for args in calibration:
            observed(*args)
    return _without_dtype_asserts(convert_pt2e(observed))


def quantize_unet(unet: torch.nn.Module, calibration: list[tuple]) -> torch.nn.Module:
    fp32 = [tuple(arg.float() for arg in args) for args in calibration]
    return _quantize_pt2e(UNetCore(unet.float().eval()), fp32, _unet_dynamic_shapes(), "UNet")


class _DecoderCore(torch.nn.Module):
    """``Decoder.forward(sample)`` without its optional ``latent_embeds`` (export needs tensors)."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.decoder(sample)


def quantize_decoder(decoder: torch.nn.Module, latents: list[torch.Tensor]) -> torch.nn.Module:
    from torch.export import Dim

    fp32 = [(sample.float(),) for sample in latents]
    dynamic = ({0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO},)
    return _quantize_pt2e(_DecoderCore(decoder.float().eval()), fp32, dynamic, "VAE decoder")


def _under_bf16_autocast(graph):
    """Call an int8 graph on fp32 inputs (as exported) under bf16 autocast, which the
    activations between its quantized ops use (see ``_without_dtype_asserts``)."""

    def run(*args):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return graph(*(arg.float() for arg in args))

    return run


class QuantizedDecoder(torch.nn.Module):
    """Drop-in ``vae.decoder``: the compiled int8 graph, run like the UNet's."""

    def __init__(self, graph, dtype: torch.dtype) -> None:
        super().__init__()
        self.graph = graph
        self.dtype = dtype
        self._run = _under_bf16_autocast(graph)

    def forward(self, sample: torch.Tensor, latent_embeds=None) -> torch.Tensor:
        return self._run(sample).to(self.dtype)


@contextlib.contextmanager
def recorded_inputs(module: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the first positional input of every call to ``module`` while the block runs."""
    calls: list[torch.Tensor] = []
    hook = module.register_forward_pre_hook(lambda _, args: calls.append(args[0].detach().clone()))
    try:
        yield calls
    finally:
        hook.remove()


def _without_dtype_asserts(graph_module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Drop export's fp32 ``_assert_tensor_metadata`` checks: the int8 graph runs under bf16
    autocast, where the activations between the quantized ops are bf16 by design."""
    for node in list(graph_module.graph.nodes):
        if (
            node.op == "call_function"
            and node.target is torch.ops.aten._assert_tensor_metadata.default
        ):
            graph_module.graph.erase_node(node)
    graph_module.recompile()
    return graph_module


def prepare_int8(pipe, compute_dtype: torch.dtype, sizes, batches):
    """Calibrate at the first size and the largest batch, quantize the UNet (and the VAE
    decoder where ``quantize_vae_decoder()``), serve through inductor (configured by the
    caller: freezing, prepacked weights).

    The UNet graph is exported with batch and latent size dynamic where possible (a batch of
    1 is specialised by export), so the other warmed shapes reuse the same calibrated graph."""
    with_vae = quantize_vae_decoder()
    recording = recorded_inputs(pipe.vae.decoder) if with_vae else contextlib.nullcontext([])
    with recording as latents:
        calibration = record_unet_inputs(pipe, sizes[0], max(batches))
    unet = pipe.unet
    run = _under_bf16_autocast(torch.compile(quantize_unet(unet, calibration), dynamic=False))
    # One calibrated graph serves every shape; torch.compile specialises it per shape itself.
    pipe.unet = GraphUNet(unet, lambda example: run, compute_dtype)
    if with_vae:
        graph = torch.compile(quantize_decoder(pipe.vae.decoder, latents), dynamic=False)
        pipe.vae.decoder = QuantizedDecoder(graph, compute_dtype)
    else:
        pipe.vae.decoder = torch.compile(pipe.vae.decoder, dynamic=False)
    log.info("int8: UNet quantized; VAE decoder %s", "quantized" if with_vae else "bf16")
    return pipe
