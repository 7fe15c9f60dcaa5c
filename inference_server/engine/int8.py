"""Opt-in int8 UNet: PT2E static quantization with inductor's x86 quantizer (AMX-INT8/VNNI).

Why this path: on a Xeon with AMX, torchao's dynamic int8 linear compiled slower than bf16
(1.45 vs 1.83 TFLOPS on an SDXL-sized MLP), while PT2E + ``X86InductorQuantizer`` lowers to
oneDNN's fused int8 linear and conv kernels (4.0 TOPS on the same MLP). Static activation
scales need calibration: the UNet's real inputs are recorded while the bf16 pipeline makes
calibration images, then replayed through the observed fp32 graph. Quality differs from bf16;
``t2i-bench --compare`` reports the PSNR of the decoded image against bf16 on the same seed.
"""

from __future__ import annotations

import logging

import torch

from inference_server.engine.unet_graph import GraphUNet, UNetCore, record_unet_inputs

log = logging.getLogger(__name__)


def _dynamic_shapes():
    """Batch and latent size left to export (Dim.AUTO): dynamic where the UNet allows it, so
    one calibrated graph can serve several sizes; specialised, not failed, where it does not."""
    from torch.export import Dim

    auto = {0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO}
    return (auto, None, {0: Dim.AUTO}, {0: Dim.AUTO}, {0: Dim.AUTO})


def quantize_unet(unet: torch.nn.Module, calibration: list[tuple]) -> torch.nn.Module:
    """fp32 export → observe the calibration inputs → int8 graph (weights and activations)."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86q
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    core = UNetCore(unet.float().eval())
    example = tuple(arg.float() for arg in calibration[0])
    try:
        exported = torch.export.export(core, example, dynamic_shapes=_dynamic_shapes())
    except Exception as error:  # a diffusers/torch pair that cannot export it dynamic
        log.warning("dynamic-shape export failed (%s); int8 graph is static", error)
        exported = torch.export.export(core, example)
    quantizer = x86q.X86InductorQuantizer()
    quantizer.set_global(x86q.get_default_x86_inductor_quantization_config())
    observed = prepare_pt2e(exported.module(), quantizer)
    with torch.no_grad():
        for args in calibration:
            observed(*(arg.float() for arg in args))
    return _without_dtype_asserts(convert_pt2e(observed))


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


def int8_unet(pipe, compute_dtype: torch.dtype, sizes, batches) -> GraphUNet:
    """Calibrate at the first size and the largest batch, quantize, serve through inductor
    (configured by the caller: freezing, prepacked weights).

    The graph is exported with batch and latent size dynamic where possible (a batch of 1 is
    specialised by export), so the other warmed shapes reuse the same calibrated graph."""
    calibration = record_unet_inputs(pipe, sizes[0], max(batches))
    unet = pipe.unet
    quantized = quantize_unet(unet, calibration)
    compiled = torch.compile(quantized, dynamic=False)

    def run(*args):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return compiled(*(arg.float() for arg in args))

    # One calibrated graph serves every shape; torch.compile specialises it per shape itself.
    return GraphUNet(unet, lambda example: run, compute_dtype)
