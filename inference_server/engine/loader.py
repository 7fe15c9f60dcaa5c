"""Load an SDXL pipeline from a local diffusers directory, failing with a clear message."""

from __future__ import annotations

import ctypes
import functools
import json
import mmap
import os
from pathlib import Path

import torch

from inference_server.engine.interface import ModelLoadError

REQUIRED_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")


def check_model_dir(model_dir: Path) -> None:
    """Fail early, naming what is missing, before diffusers raises something obscure."""
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    index = model_dir / "model_index.json"
    if not index.is_file():
        raise ModelLoadError(f"{index} is missing: {model_dir} is not a diffusers pipeline")
    try:
        components = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{index} is not valid JSON: {error}") from None
    missing = [
        name
        for name in REQUIRED_COMPONENTS
        if name not in components or not (model_dir / name).is_dir()
    ]
    if missing:
        raise ModelLoadError(f"{model_dir} lacks pipeline components: {', '.join(missing)}")


def _dtype_keyword() -> str:
    """Newer diffusers take ``dtype`` and warn on ``torch_dtype``; the IPEX environment's
    diffusers 0.35 knows only ``torch_dtype``."""
    from diffusers.pipelines import pipeline_utils

    return "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"


def weights_variant(model_dir: Path) -> str | None:
    """ "fp16" when the UNet ships only fp16-variant safetensors (a download of just the
    ``*.fp16.safetensors`` files), else None: diffusers needs the variant named to find them.
    The weights are cast to the requested dtype either way."""
    unet = model_dir / "unet"
    if (unet / "diffusion_pytorch_model.safetensors").is_file():
        return None
    if any(unet.glob("diffusion_pytorch_model*.fp16.safetensors")) or any(
        unet.glob("diffusion_pytorch_model.fp16-*.safetensors")
    ):
        return "fp16"
    return None


def load_pipeline(model_dir: Path | str, dtype: torch.dtype):
    """Load the pipeline exactly as production does: local files only, safetensors, ``dtype``."""
    # Before diffusers (and huggingface_hub, which reads it at import) is imported, where this
    # is the first import; local_files_only below holds either way.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from diffusers import StableDiffusionXLPipeline

    model_dir = Path(model_dir)
    check_model_dir(model_dir)
    try:
        pipe = StableDiffusionXLPipeline.from_pretrained(
            model_dir,
            local_files_only=True,
            use_safetensors=True,
            variant=weights_variant(model_dir),
            **{_dtype_keyword(): dtype},
        )
    except Exception as error:  # diffusers raises many types for a corrupt checkpoint
        raise ModelLoadError(
            f"cannot load the pipeline in {model_dir}: {type(error).__name__}: {error}"
        ) from None
    pipe.set_progress_bar_config(disable=True)
    materialize_weights(pipe)
    return pipe


def materialize_weights(pipe) -> None:
    """Copy every weight out of the memory-mapped safetensors files into process memory.

    diffusers and transformers keep bf16 weights as views of the mmapped checkpoint (RssFile).
    Those clean file pages are the first thing the kernel evicts under memory pressure, and
    every step then re-reads them from disk (or from the network, on an OSS FUSE mount), which
    made eager markedly slower per image once another process took memory. Anonymous memory
    is charged to the pod like the rest and cannot be silently dropped. Each tensor's file
    pages are dropped from this process as soon as it is copied: the mapping lives until a
    component's last view is gone, which otherwise counts the UNet twice in the peak RSS.
    diffusers' ``disable_mmap`` is no better: it reads a whole file into one buffer first.
    Figures: BENCHMARKS.md, "Earlier rows (second session)", the loader problem and its table."""
    checkpoint_maps = mapped_file_ranges(".safetensors")
    for module in pipe.components.values():
        if not isinstance(module, torch.nn.Module):
            continue
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                source = tensor.data
                tensor.data = source.clone()
                drop_mapped_pages(source, checkpoint_maps)


def mapped_file_ranges(suffix: str) -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of files whose name ends with ``suffix``."""
    ranges = []
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].rstrip("\n").endswith(suffix):
                start, end = (int(address, 16) for address in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


def drop_mapped_pages(tensor: torch.Tensor, ranges: list[tuple[int, int]]) -> None:
    """``madvise(MADV_DONTNEED)`` the whole pages of ``tensor`` that lie in one of ``ranges``.

    Only for a tensor already copied: the pages leave RSS (they stay in the page cache), and a
    later touch would re-read them from the file — the mappings are private and read-only, so
    nothing is lost. Pages shared with a neighbouring tensor are kept (rounded inwards)."""
    if not ranges or not tensor.is_contiguous() or tensor.device.type != "cpu":
        return
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    page = mmap.PAGESIZE
    low, high = -(-start // page) * page, end // page * page
    if high <= low or not any(lo <= low and high <= hi for lo, hi in ranges):
        return
    _libc().madvise(ctypes.c_void_p(low), ctypes.c_size_t(high - low), mmap.MADV_DONTNEED)


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return libc
