"""The fused SDXL blocks must compute what diffusers' blocks compute, and leave alone the
blocks they were not written for."""

from __future__ import annotations

import copy
import gc
import weakref

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from torch import nn

from inference_server.engine import fused as fused_module
from inference_server.engine.fused import (
    FusedResnetBlock,
    FusedTransformer2D,
    FusedTransformerBlock,
    fuse_blocks,
)
from inference_server.tiny_model import build_tiny_pipeline


@pytest.fixture(scope="module")
def tiny_pipe():
    return build_tiny_pipeline()


def unet_inputs(pipe, dtype: torch.dtype, batch: int) -> dict:
    generator = torch.Generator().manual_seed(batch)
    config = pipe.unet.config
    text_dim = pipe.text_encoder_2.config.projection_dim

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(dtype)

    return {
        "sample": randn(batch, config.in_channels, 16, 24).to(memory_format=torch.channels_last),
        "timestep": torch.tensor(999),
        "encoder_hidden_states": randn(batch, 77, config.cross_attention_dim),
        "added_cond_kwargs": {
            "text_embeds": randn(batch, text_dim),
            "time_ids": torch.tensor([[128.0, 192, 0, 0, 128, 192]] * batch, dtype=dtype),
        },
    }


def count(model: nn.Module, kind: type) -> int:
    return sum(type(module) is kind for module in model.modules())


def assert_fused_as_accurate(run, reference: nn.Module, fused: nn.Module, inputs: dict) -> None:
    """fp32: the same numbers. bf16: at least as close to the fp32 result as diffusers' own
    bf16 modules (fusing skips roundings, so elementwise equality with them is not expected)."""
    with torch.no_grad():
        fp32_inputs = {k: _to(v, torch.float32) for k, v in inputs.items()}
        truth = run(copy.deepcopy(reference).float(), fp32_inputs)
        expected, actual = run(reference, inputs).float(), run(fused, inputs).float()
    assert truth.abs().mean() > 0.05  # a real output, not one any computation matches
    if inputs_dtype(inputs) == torch.float32:
        torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)
        return
    diffusers_error = (expected - truth).abs().mean()
    fused_error = (actual - truth).abs().mean()
    assert fused_error <= 1.2 * diffusers_error, (fused_error, diffusers_error)
    assert (actual - truth).abs().max() <= 2 * (expected - truth).abs().max()


def inputs_dtype(inputs: dict) -> torch.dtype:
    tensors = [v for v in inputs.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return tensors[0].dtype


def _to(value, dtype: torch.dtype):
    if isinstance(value, dict):
        return {k: _to(v, dtype) for k, v in value.items()}
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_unet_matches_diffusers_unet(tiny_pipe, dtype):
    reference = copy.deepcopy(tiny_pipe.unet).to(dtype).eval()
    fused = copy.deepcopy(reference)
    transformers, resnets = count(fused, Transformer2DModel), count(fused, ResnetBlock2D)
    assert fuse_blocks(fused) == transformers + resnets > 0
    assert count(fused, FusedTransformer2D) == transformers
    assert count(fused, Transformer2DModel) == 0
    for batch in (1, 2):  # the packing shape, then another one

        def run(unet, inputs):
            return unet(**inputs).sample

        assert_fused_as_accurate(run, reference, fused, unet_inputs(tiny_pipe, dtype, batch))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_vae_decoder_matches_diffusers_decoder(tiny_pipe, dtype):
    reference = copy.deepcopy(tiny_pipe.vae).to(dtype).eval()
    fused = copy.deepcopy(reference)
    assert fuse_blocks(fused) == count(reference, ResnetBlock2D)  # the decoder's "group" ones too
    assert count(fused.decoder, FusedResnetBlock) > 0
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, reference.config.latent_channels, 8, 12, generator=generator)

    def run(vae, inputs):
        return vae.decode(inputs["latents"].to(memory_format=torch.channels_last)).sample

    assert_fused_as_accurate(run, reference, fused, {"latents": latents.to(dtype)})


class ShiftedLinear(nn.Linear):
    """A LoRA-style subclass: its forward differs, so fusing its block would drop a term."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + 1


def test_blocks_the_fusion_was_not_written_for_keep_diffusers_modules(tiny_pipe):
    unet = copy.deepcopy(tiny_pipe.unet)
    transformers = [m for m in unet.modules() if type(m) is Transformer2DModel]
    custom, lora = transformers[0], transformers[1]
    for attention in custom.transformer_blocks[0].attn1, custom.transformer_blocks[0].attn2:
        attention.set_processor(AttnProcessor())  # a processor the fused attention is not
    feed_forward = lora.transformer_blocks[0].ff.net
    plain = feed_forward[2]
    feed_forward[2] = ShiftedLinear(plain.in_features, plain.out_features)
    fuse_blocks(unet)
    kept = [m for m in unet.modules() if type(m) is Transformer2DModel]
    assert kept == [custom, lora]


def test_fused_transformer_refuses_masks_rather_than_ignoring_them(tiny_pipe):
    original = next(m for m in tiny_pipe.unet.modules() if type(m) is Transformer2DModel)
    model = copy.deepcopy(original)
    fused = FusedTransformer2D(model)
    channels = model.config.in_channels
    hidden = torch.randn(1, channels, 4, 4)
    context = torch.randn(1, 77, model.config.cross_attention_dim)
    with pytest.raises(ValueError, match="encoder_attention_mask"):
        fused(hidden, encoder_hidden_states=context, encoder_attention_mask=torch.ones(1, 77))


def test_packed_backend_reports_how_many_blocks_it_fused(caplog):
    """Operators read this line to see whether LoRA or custom processors disabled fusion."""
    import logging

    from inference_server.engine.backends import prepare_pipeline

    pipe = build_tiny_pipeline()
    expected = sum(count(pipe.unet, kind) for kind in (Transformer2DModel, ResnetBlock2D))
    expected += count(pipe.vae, ResnetBlock2D)
    with caplog.at_level(logging.INFO, logger="inference_server.engine.backends"):
        prepare_pipeline(pipe, "packed", torch.float32)
    assert f"packed backend: {expected} blocks fused" in caplog.text


def test_cross_attention_projects_the_text_once_per_call_and_images_are_unchanged(monkeypatch):
    from inference_server.engine.backends import prepare_pipeline

    pipe = prepare_pipeline(build_tiny_pipeline().to(torch.bfloat16), "packed", torch.bfloat16)
    cross = [m.attn2 for m in pipe.unet.modules() if type(m) is FusedTransformerBlock]
    assert cross
    projections = []

    def counted(project):
        def forward(*args):
            projections.append(args[0].shape)
            return project(*args)

        return forward

    for attention in cross:
        attention.to_k.forward = counted(attention.to_k.forward)

    def generate(prompt: str) -> np.ndarray:
        generator = torch.Generator().manual_seed(0)
        image = pipe(prompt, num_inference_steps=3, guidance_scale=0.0, height=64, width=64,
                     generator=generator).images[0]  # fmt: skip
        return np.asarray(image)

    with torch.inference_mode():
        cached = generate("a cat")
        assert len(projections) == len(cross)  # once per call, not once per step
        other_text = generate("a dog")
        assert len(projections) == 2 * len(cross)  # a new text is projected again
        monkeypatch.setattr(fused_module._ContextCache, "get", lambda self, c, compute: compute(c))
        uncached = generate("a cat")
    assert len(projections) == 5 * len(cross)
    assert np.array_equal(cached, uncached)
    assert not np.array_equal(cached, other_text)


def test_context_cache_recomputes_for_another_or_changed_tensor_and_frees_with_it():
    cache, computed = fused_module._ContextCache(), []

    def double(tensor: torch.Tensor) -> torch.Tensor:
        computed.append(tensor)
        return tensor * 2

    first = torch.ones(3)
    assert cache.get(first, double) is cache.get(first, double)
    assert len(computed) == 1
    first.add_(1)  # changed in place: the cached result is stale
    assert torch.equal(cache.get(first, double), torch.full((3,), 4.0))
    second = torch.zeros(3)
    result = weakref.ref(cache.get(second, double))
    assert len(computed) == 3
    computed.clear()
    del first
    gc.collect()
    assert result() is not None  # an earlier context dying does not drop the current one
    del second
    gc.collect()
    assert result() is None
