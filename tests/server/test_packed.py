"""The packed backend: oneDNN-packed Linear/Conv2d must compute what the plain modules do."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inference_server.engine.backends import prepare_pipeline
from inference_server.engine.packed import PackedConv2d, PackedLinear, pack_weights


class LoraLinear(nn.Linear):
    """A subclass with its own forward: packing it would silently drop its extra term."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 1


def small_network(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return nn.ModuleDict(
        {
            "conv": nn.Conv2d(8, 16, 3, padding=1),
            "strided": nn.Conv2d(16, 16, 3, stride=2, padding=1, bias=False),
            "head": nn.Linear(16, 24),
            "lora": LoraLinear(16, 24),
            "reflect": nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"),
        }
    ).to(dtype)


def run(network: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    features = network["strided"](network["conv"](x))
    pooled = features.mean(dim=(2, 3))
    return features, network["head"](pooled), network["lora"](pooled), network["reflect"](x)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_packed_modules_match_the_plain_ones_for_the_first_and_later_shapes(dtype):
    reference, packed = small_network(dtype), small_network(dtype)
    assert pack_weights(packed) == 3  # two plain convs and the plain linear
    assert isinstance(packed["conv"], PackedConv2d) and isinstance(packed["head"], PackedLinear)
    assert type(packed["lora"]) is LoraLinear and type(packed["reflect"]) is nn.Conv2d
    tolerance = {"atol": 2e-2, "rtol": 2e-2} if dtype == torch.bfloat16 else {}
    with torch.no_grad():
        for shape in ((2, 8, 16, 16), (1, 8, 24, 20)):  # the packing shape, then another one
            x = torch.randn(shape, dtype=dtype).to(memory_format=torch.channels_last)
            for expected, actual in zip(run(reference, x), run(packed, x), strict=True):
                torch.testing.assert_close(actual, expected, **tolerance)
    assert packed["conv"].weight is None and packed["conv"].packed.is_mkldnn  # original freed
    assert packed["head"].weight is None and packed["head"].packed.is_mkldnn


def test_packed_backend_produces_images_of_requested_sizes():
    from inference_server.tiny_model import build_tiny_pipeline

    pipe = prepare_pipeline(build_tiny_pipeline().to(torch.bfloat16), "packed", torch.bfloat16)
    assert isinstance(pipe.unet.conv_in, PackedConv2d)
    assert isinstance(pipe.text_encoder_2.text_projection, PackedLinear)
    with torch.no_grad():
        for batch, (height, width) in ((1, (64, 64)), (2, (64, 96))):
            images = pipe(["a cat"] * batch, num_inference_steps=1, guidance_scale=0.0,
                          height=height, width=width).images  # fmt: skip
            expected = [((width, height), "RGB")] * batch
            assert [(image.size, image.mode) for image in images] == expected


def test_packed_backend_draws_the_eager_image_for_the_same_seed():
    """Same weights, same seed: only rounding may differ (bf16 outputs of reordered GEMMs)."""
    import numpy as np

    from inference_server.tiny_model import build_tiny_pipeline

    images = {}
    for backend in ("eager", "packed"):
        pipe = prepare_pipeline(build_tiny_pipeline().to(torch.bfloat16), backend, torch.bfloat16)
        seed = torch.Generator().manual_seed(7)
        with torch.no_grad():
            images[backend] = pipe("a cat", num_inference_steps=2, guidance_scale=0.0, height=64,
                                   width=64, generator=seed).images[0]  # fmt: skip
    eager, packed = (np.asarray(images[b], dtype=np.float64) for b in ("eager", "packed"))
    assert eager.std() > 1  # a real image, not a flat one that any backend would match
    psnr = 10 * np.log10(255**2 / max(((eager - packed) ** 2).mean(), 1e-12))
    assert psnr > 35
