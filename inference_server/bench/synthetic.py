"""The full SDXL-Turbo architecture at its real configs with random weights (no download).

Compute cost does not depend on weight values, so this is an honest stand-in for timing.
"""

from __future__ import annotations

import torch


def build_synthetic_sdxl(dtype: torch.dtype):
    """StableDiffusionXLPipeline with SDXL-Turbo's real component configs, random weights."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build in the target dtype: no fp32 copy in peak RSS
    try:
        return _build(dtype)
    finally:
        torch.set_default_dtype(previous)


def _build(dtype: torch.dtype):
    from diffusers import (
        AutoencoderKL,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
    )

    from inference_server.tiny_model import clip_tokenizers, sdxl_turbo_scheduler

    tokenizers = clip_tokenizers()
    common = {"vocab_size": 49408, "max_position_embeddings": 77, "hidden_act": "quick_gelu"}
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            projection_dim=768,
            **common,
        )
    ).to(dtype)
    text_encoder_2 = CLIPTextModelWithProjection(
        CLIPTextConfig(
            hidden_size=1280,
            intermediate_size=5120,
            num_attention_heads=20,
            num_hidden_layers=32,
            projection_dim=1280,
            hidden_act="gelu",
            vocab_size=49408,
            max_position_embeddings=77,
        )
    ).to(dtype)
    unet = UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,
    ).to(dtype)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
        scaling_factor=0.13025,
    ).to(dtype)
    scheduler = sdxl_turbo_scheduler()
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizers[0],
        tokenizer_2=tokenizers[1],
        unet=unet,
        scheduler=scheduler,
    )
