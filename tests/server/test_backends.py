"""Backends: name resolution, dtype choice, and that a prepared tiny pipeline makes an image."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference_server.engine import backends
from inference_server.engine.backends import (
    BACKENDS,
    prepare_pipeline,
    resolve_backend,
    resolve_dtype,
)


def test_resolve_backend_rejects_unknown_name_listing_valid_ones():
    with pytest.raises(ValueError, match="eager"):
        resolve_backend("turbo")


def test_resolve_backend_maps_auto_to_a_concrete_backend():
    assert resolve_backend("auto") in BACKENDS and resolve_backend("auto") != "auto"
    assert resolve_backend("compile") == "compile"


def test_backends_this_environment_has_are_not_refused():
    """The test venv has oneDNN, a C++ compiler and torchao: the check must not refuse them."""
    from inference_server.engine.backends import missing_requirement

    assert [missing_requirement(name) for name in ("auto", "eager", "packed", "compile")] == [
        None
    ] * 4
    with pytest.raises(ValueError, match="eager"):
        missing_requirement("turbo")


def test_resolve_dtype_follows_cpu_bf16_support(monkeypatch):
    assert resolve_dtype("fp32") is torch.float32
    assert resolve_dtype("bf16") is torch.bfloat16
    monkeypatch.setattr(backends, "cpu_has_fast_bf16", lambda: False)
    assert resolve_dtype("auto") is torch.float32
    monkeypatch.setattr(backends, "cpu_has_fast_bf16", lambda: True)
    assert resolve_dtype("auto") is torch.bfloat16


def test_eager_backend_produces_image_of_requested_size():
    from inference_server.tiny_model import build_tiny_pipeline

    pipe = prepare_pipeline(build_tiny_pipeline().to(torch.bfloat16), "eager", torch.bfloat16)
    with torch.no_grad():
        image = pipe(
            "a cat", num_inference_steps=1, guidance_scale=0.0, height=128, width=192
        ).images[0]
    assert image.size == (192, 128)
    assert image.mode == "RGB"


def test_compile_backend_produces_image_of_requested_size():
    from inference_server.tiny_model import build_tiny_pipeline

    pipe = prepare_pipeline(build_tiny_pipeline().to(torch.bfloat16), "compile", torch.bfloat16)
    with torch.no_grad():  # a second batch size compiles a second graph from the same weights
        for batch in (1, 2):
            images = pipe(["a cat"] * batch, num_inference_steps=1, guidance_scale=0.0,
                          height=64, width=64).images  # fmt: skip
            assert [(image.size, image.mode) for image in images] == [((64, 64), "RGB")] * batch


def test_int8_engine_serves_every_warmed_batch_from_one_calibrated_graph(tiny_model_dir):
    """The server path: load from disk, calibrate at the largest warmed batch, then batches 1
    and 2 and a second size all come out of the int8 UNet (not an eager fallback)."""
    from inference_server.engine.pipeline import BatchRequest, DiffusersEngine, EngineConfig
    from inference_server.engine.unet_graph import GraphUNet

    config = EngineConfig(
        model_dir=tiny_model_dir,
        backend="int8",
        dtype="bf16",
        threads=2,
        warmup_sizes=((64, 64),),
        warmup_batches=(1, 2),
    )
    engine = DiffusersEngine(config)
    engine.load()
    assert isinstance(engine.pipe.unet, GraphUNet)
    for width, height, batch in ((64, 64, 2), (64, 64, 1), (96, 64, 1)):
        request = BatchRequest(["a cat"] * batch, [""] * batch, list(range(batch)), width, height,
                               2, 0.0)  # fmt: skip
        images = engine.generate(request)
        assert [image.size for image in images] == [(width, height)] * batch


def test_int8_vae_decoder_is_an_int8_graph_when_asked(tiny_model_dir, monkeypatch):
    """T2I_INT8_VAE=on: the decoder is calibrated on the latents the calibration images
    produced and serves its quantized graph (quantize/dequantize ops), at two sizes."""
    from inference_server.engine.int8 import QuantizedDecoder
    from inference_server.engine.pipeline import BatchRequest, DiffusersEngine, EngineConfig

    monkeypatch.setenv("T2I_INT8_VAE", "on")
    config = EngineConfig(model_dir=tiny_model_dir, backend="int8", dtype="bf16", threads=2,
                          warmup_sizes=((64, 64),), warmup_batches=(1,))  # fmt: skip
    engine = DiffusersEngine(config)
    engine.load()
    decoder = engine.pipe.vae.decoder
    assert isinstance(decoder, QuantizedDecoder)
    targets = {str(node.target) for node in decoder.graph._orig_mod.graph.nodes}
    assert any("quantize_per_tensor" in target for target in targets)
    for width, height in ((64, 64), (96, 64)):
        request = BatchRequest(["a cat"], [""], [0], width, height, 2, 0.0)
        assert [image.size for image in engine.generate(request)] == [(width, height)]


@pytest.mark.parametrize(("value", "expected"), [("on", True), ("OFF", False)])
def test_int8_vae_mode_reads_the_environment(monkeypatch, value, expected):
    from inference_server.engine.int8 import quantize_vae_decoder

    monkeypatch.setenv("T2I_INT8_VAE", value)
    assert quantize_vae_decoder() is expected
    monkeypatch.setenv("T2I_INT8_VAE", "maybe")
    with pytest.raises(ValueError, match="T2I_INT8_VAE must be one of off, on"):
        quantize_vae_decoder()


def test_loaded_weights_live_in_process_memory_not_in_the_mmapped_checkpoint(tiny_model_dir):
    """File-backed weights are evicted under memory pressure and re-read on every step."""
    from inference_server.engine.loader import load_pipeline, mapped_file_ranges

    pipe = load_pipeline(tiny_model_dir, torch.float32)  # the saved dtype: no conversion copy
    tensors = [t for m in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2)
               for t in [*m.parameters(), *m.buffers()]]  # fmt: skip
    assert tensors
    maps = mapped_file_ranges(".safetensors")  # checkpoint files this process still maps
    inside = [t.shape for t in tensors
              if any(lo <= t.untyped_storage().data_ptr() < hi for lo, hi in maps)]  # fmt: skip
    assert inside == []


def mapping_rss_kib(path: Path) -> int:
    """Resident size of this process's mapping of ``path`` (/proc/self/smaps), in KiB."""
    lines = Path("/proc/self/smaps").read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.endswith(str(path)):
            rss = next(row for row in lines[index + 1 :] if row.startswith("Rss:"))
            return int(rss.split()[1])
    raise AssertionError(f"{path} is not mapped")


def test_copied_weights_leave_their_checkpoint_pages_out_of_rss_without_changing_them(tmp_path):
    """The copy-out must not count a component twice (the 12 GB peak), nor corrupt the file."""
    from inference_server.engine.loader import drop_mapped_pages, mapped_file_ranges

    checkpoint = tmp_path / "weights.safetensors"
    content = torch.randint(0, 256, (8 << 20,), dtype=torch.uint8)
    checkpoint.write_bytes(content.numpy().tobytes())
    mapped = torch.from_file(str(checkpoint), shared=False, size=content.numel(), dtype=torch.uint8)
    assert torch.equal(mapped, content)  # every page touched: resident
    resident = mapping_rss_kib(checkpoint)
    assert resident >= 8 << 10

    drop_mapped_pages(mapped, mapped_file_ranges(".bin"))  # not a checkpoint mapping: kept
    assert mapping_rss_kib(checkpoint) == resident
    drop_mapped_pages(mapped, mapped_file_ranges(".safetensors"))
    assert mapping_rss_kib(checkpoint) < resident // 8
    assert torch.equal(mapped, content)  # re-read from the file on the next touch
