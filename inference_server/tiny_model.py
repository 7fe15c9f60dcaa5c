"""Generate a tiny SDXL pipeline with random weights, offline, in diffusers format.

Why: real weights cannot be downloaded in tests or the demo, yet the server must load a real
diffusers pipeline from disk through the same code path as ``stabilityai/sdxl-turbo``. The
architecture keeps SDXL's shape (two CLIP text encoders, text_time conditioning, a 4-level VAE so
512x512 images use 64x64 latents) at a size where one image takes a fraction of a second.

Usage: ``python -m inference_server.tiny_model OUTDIR``
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORDS = [
    "a",
    "panda",
    "music",
    "with",
    "headphones",
    "highly",
    "detailed",
    "8k",
    "listening",
    "to",
]


def _write_clip_vocab(directory: Path) -> tuple[Path, Path]:
    """A hand-made byte-level BPE vocab: letters, digits, a few whole words, the special tokens."""
    tokens = ["<|startoftext|>", "<|endoftext|>", "<unk>", ".", ",", "!"]
    tokens += list(_LETTERS) + [f"{c}</w>" for c in _LETTERS]
    tokens += list("0123456789") + [f"{d}</w>" for d in "0123456789"]
    merges = ["#version: 0.2"]
    for word in _WORDS:
        # Merge each listed word left to right so it becomes a single token.
        current = word[0]
        for index, char in enumerate(word[1:], start=1):
            piece = char + ("</w>" if index == len(word) - 1 else "")
            merges.append(f"{current} {piece}")
            current += piece
            if current not in tokens:
                tokens.append(current)
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    vocab_file, merges_file = directory / "vocab.json", directory / "merges.txt"
    vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
    merges_file.write_text("\n".join(dict.fromkeys(merges)) + "\n", encoding="utf-8")
    return vocab_file, merges_file


def sdxl_turbo_scheduler():
    """The scheduler stabilityai/sdxl-turbo ships: Euler ancestral with trailing timesteps."""
    from diffusers import EulerAncestralDiscreteScheduler

    return EulerAncestralDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="trailing",
    )


def clip_tokenizers() -> tuple:
    """The two SDXL tokenizers (CLIP-L and bigG use the same BPE) on the hand-made vocab."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        vocab_file, merges_file = _write_clip_vocab(Path(scratch))
        return tuple(
            CLIPTokenizer(str(vocab_file), str(merges_file), unk_token="<unk>", model_max_length=77)
            for _ in range(2)
        )


def build_tiny_pipeline(seed: int = 0):
    """Build a StableDiffusionXLPipeline with SDXL's structure and tiny random weights."""
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

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = clip_tokenizers()
    text_config = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
        "projection_dim": 32,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
    }
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**text_config))
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=512,
    )
    scheduler = sdxl_turbo_scheduler()
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    )


def save_tiny_pipeline(directory: Path, seed: int = 0) -> Path:
    """Build the tiny pipeline and save it (safetensors) the way the real model is laid out."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    build_tiny_pipeline(seed).save_pretrained(directory, safe_serialization=True)
    return directory


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m inference_server.tiny_model OUTDIR", file=sys.stderr)
        return 2
    path = save_tiny_pipeline(Path(args[0]))
    print(f"tiny SDXL pipeline saved to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
