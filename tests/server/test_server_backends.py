"""Backends that cannot run say why; the t2i-bench CLI runs end to end on the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec

import pytest
import torch

from inference_server.engine.backends import prepare_pipeline


def test_ipex_without_the_extension_fails_with_a_clear_reason():
    if find_spec("intel_extension_for_pytorch") is not None:
        pytest.fail("this env is not expected to have IPEX; test the ipex backend instead")
    from inference_server.tiny_model import build_tiny_pipeline

    with pytest.raises(RuntimeError, match="intel_extension_for_pytorch"):
        prepare_pipeline(build_tiny_pipeline(), "ipex", torch.float32)


def test_int8_is_refused_not_silently_eager():
    from inference_server.tiny_model import build_tiny_pipeline

    with pytest.raises(NotImplementedError, match="int8"):
        prepare_pipeline(build_tiny_pipeline(), "int8", torch.float32)


def test_bench_cli_runs_on_tiny_model_dir_and_prints_parseable_figures(tiny_model_dir):
    command = [sys.executable, "-m", "inference_server.bench.cli", "--model", str(tiny_model_dir)]
    command += ["--repeat", "2", "--height", "64", "--width", "64", "--json", "--bf16"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    result = report["result"]
    assert len(result["latencies_s"]) == 3
    assert result["images_per_s"] == pytest.approx(1 / result["s_per_image"])
    assert result["dtype"] == "bfloat16" and result["peak_rss_gb"] > 0
    assert result["flops_per_image"]["unet_all_steps"] > 0
    assert report["bf16_matmul_peak_tflops"] > 0 and result["pct_of_peak"] > 0
    assert report["cpu"]["model"]


def test_bench_cli_rejects_zero_repeat():
    command = [sys.executable, "-m", "inference_server.bench.cli", "--repeat", "0"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--repeat" in out.stderr
