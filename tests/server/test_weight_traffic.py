"""The weight-traffic probe behind BENCHMARKS.md's batch-1 explanation runs and reports every
figure it promises (its values are benchmark output, not asserted here)."""

from __future__ import annotations

import json

import pytest
import torch

from inference_server.bench import weight_traffic


@pytest.fixture
def restore_threads():
    """main(--threads) sets the process-wide pool; later tests must get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_weight_traffic_probe_prints_hot_and_cold_rates_per_shape(
    monkeypatch, capsys, restore_threads
):
    monkeypatch.setattr(weight_traffic, "UNET_GEMMS", ((32, 64, 128), (16, 128, 64)))
    monkeypatch.setattr(weight_traffic, "COLD_BYTES", 2**20)
    assert weight_traffic.main(["--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [gemm["shape"] for gemm in report["gemms"]] == [[32, 64, 128], [16, 128, 64]]
    for gemm in report["gemms"]:
        assert gemm["hot_tflops"] > 0 and gemm["cold_tflops"] > 0
        assert gemm["cold_weight_mb"] >= 1  # cycled through distinct weights, not one
    assert report["memory"]["read_gb_s"] > 0 and report["memory"]["copy_gb_s"] > 0
    assert report["threads"] == 1 and report["bf16_matmul_peak_tflops"] > 0
