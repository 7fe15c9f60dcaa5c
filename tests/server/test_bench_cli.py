"""Backends that cannot run say why; the t2i-bench CLI runs end to end on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec

import pytest
import torch
from server_testlib import cli_env

from inference_server.engine.backends import prepare_pipeline


def test_ipex_without_the_extension_fails_with_a_clear_reason():
    if find_spec("intel_extension_for_pytorch") is not None:
        pytest.fail("this env is not expected to have IPEX; test the ipex backend instead")
    from inference_server.tiny_model import build_tiny_pipeline

    with pytest.raises(RuntimeError, match="intel_extension_for_pytorch"):
        prepare_pipeline(build_tiny_pipeline(), "ipex", torch.float32)


def run_bench(*args: str, timeout: float = 600) -> dict:
    """Run t2i-bench to completion and return its JSON report."""
    command = [sys.executable, "-m", "inference_server.bench.cli", *args, "--json"]
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=cli_env(), check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bench_cli_runs_on_tiny_model_dir_and_prints_parseable_figures(tiny_model_dir):
    report = run_bench(
        "--model", str(tiny_model_dir), "--repeat", "2", "--height", "64", "--width", "64",
        "--bf16", "--profile", timeout=120,
    )  # fmt: skip
    result = report["result"]
    assert len(result["latencies_s"]) == 3
    assert result["images_per_s"] == pytest.approx(1 / result["s_per_image"])
    assert result["dtype"] == "bfloat16" and result["peak_rss_gb"] > 0
    assert result["flops_per_image"]["unet_all_steps"] > 0
    assert report["bf16_matmul_peak_tflops"] > 0 and result["pct_of_bf16_peak"] > 0
    assert report["cpu"]["model"] and report["int8_matmul_peak_tops"] > 0
    shares = result["profile"]["share_by_kind"]
    assert sum(shares.values()) == pytest.approx(1.0) and shares["matmul/conv/attention"] > 0
    assert result["profile"]["top_ops"][0]["self_s"] > 0
    shapes = result["profile"]["top_matmul_shapes"]
    assert shapes and all(call["input_shapes"] and call["calls"] > 0 for call in shapes)


def test_bench_cli_rejects_zero_repeat():
    command = [sys.executable, "-m", "inference_server.bench.cli", "--repeat", "0"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--repeat" in out.stderr


def test_bench_compare_interleaves_two_workers_and_reports_ratio_and_psnr(tiny_model_dir):
    report = run_bench(
        "--model", str(tiny_model_dir), "--bf16", "--height", "64", "--width", "64",
        "--repeat", "3", "--compare", "eager", "int8",
    )  # fmt: skip
    result = report["result"]
    assert (result["a"], result["b"]) == ("eager", "int8")
    for label in ("eager", "int8"):
        side = result["sides"][label]
        assert side["backend"] == label and len(side["latencies_s"]) == 3
        assert side["startup_s"] >= side["warmup_s"] > 0 and side["peak_rss_gb"] > 0
        assert side["tflops"] > 0 and side["pct_of_bf16_peak"] > 0
    speedup = result["speedup_b_over_a"]
    assert len(speedup["pairs"]) == 3 and speedup["min"] <= speedup["median"] <= speedup["max"]
    # Same weights, same seed: int8 deviates from bf16, but is an image of the same scene.
    assert 5 < result["psnr_db_b_vs_a"] < float("inf")
    assert report["int8_matmul_peak_tops"] > 0


def test_bench_compare_of_identical_configs_gives_identical_images(tiny_model_dir):
    report = run_bench(
        "--model", str(tiny_model_dir), "--bf16", "--height", "64", "--width", "64",
        "--repeat", "1", "--no-flops", "--no-peak", "--compare", "eager", "eager",
    )  # fmt: skip
    assert report["result"]["psnr_db_b_vs_a"] == float("inf")
    assert list(report["result"]["sides"]) == ["eager (A)", "eager (B)"]  # both reported


def test_bench_compare_batches_times_each_side_at_its_batch_and_compares_per_image(
    tiny_model_dir,
):
    """Batch 1 against batch 2 interleaved: the ratio is of seconds per image, not per call."""
    report = run_bench(
        "--model", str(tiny_model_dir), "--bf16", "--height", "64", "--width", "64",
        "--repeat", "2", "--no-peak", "--compare", "eager", "eager", "--compare-batches", "1", "2",
    )  # fmt: skip
    result = report["result"]
    assert (result["a"], result["b"]) == ("eager batch 1", "eager batch 2")
    sides = {batch: result["sides"][f"eager batch {batch}"] for batch in (1, 2)}
    assert [sides[batch]["batch"] for batch in (1, 2)] == [1, 2]
    # The report rounds latencies to 0.1 ms; the tiny model's calls take only ~10 ms, so allow
    # that rounding (and the pairs' own rounding to 4 decimals) relative to the shortest call.
    shortest = min(sides[1]["latencies_s"] + sides[2]["latencies_s"])
    rounding = 2 * 0.5e-4 / shortest + 1e-4
    for batch, side in sides.items():
        expected_mean = sum(side["latencies_s"]) / 2 / batch
        assert side["s_per_image"] == pytest.approx(expected_mean, rel=rounding)
        assert side["tflops"] > 0  # FLOPs per image, counted once, apply to both
    pairs = zip(sides[1]["latencies_s"], sides[2]["latencies_s"], strict=True)
    expected = [t1 / (t2 / 2) for t1, t2 in pairs]
    assert result["speedup_b_over_a"]["pairs"] == pytest.approx(expected, rel=rounding)
    assert result["psnr_db_b_vs_a"] is None  # other batches draw other noise


def test_bench_compare_batches_needs_compare():
    out = subprocess.run(
        [sys.executable, "-m", "inference_server.bench.cli", "--compare-batches", "1", "4"],
        capture_output=True, text=True, timeout=120, env=cli_env(),
    )  # fmt: skip
    assert out.returncode == 2 and "--compare-batches needs --compare" in out.stderr


def test_bench_compare_rejects_unknown_backend():
    out = subprocess.run(
        [sys.executable, "-m", "inference_server.bench.cli", "--compare", "eager", "turbo"],
        capture_output=True, text=True, timeout=120, env=cli_env(),
    )  # fmt: skip
    assert out.returncode != 0 and "turbo" in out.stderr and "Traceback" not in out.stderr


def test_bench_compare_preloads_an_allocator_into_one_worker_only(tiny_model_dir):
    """``eager+LIB`` LD_PRELOADs LIB (tcmalloc, which the server image ships) into B's worker
    only; A keeps glibc malloc."""
    allocators = os.environ.get("T2I_ALLOCATORS")
    if not allocators:
        pytest.skip("T2I_ALLOCATORS unset: run via hack/test.sh, or bash hack/allocators.sh")
    report = run_bench(
        "--model", str(tiny_model_dir), "--bf16", "--height", "64", "--width", "64",
        "--repeat", "1", "--no-flops", "--no-peak",
        "--compare", "eager", f"eager+{allocators}/libtcmalloc_minimal.so.4",
    )  # fmt: skip
    result = report["result"]
    assert result["b"] == "eager+libtcmalloc_minimal.so.4"
    assert result["sides"]["eager"]["allocator"] == "glibc"
    assert result["sides"]["eager+libtcmalloc_minimal.so.4"]["allocator"] == "tcmalloc"
    assert result["psnr_db_b_vs_a"] == float("inf")  # the allocator does not change the maths


def test_bench_compare_rejects_a_missing_library_to_preload(tmp_path):
    missing = tmp_path / "libnothing.so"
    out = subprocess.run(
        [sys.executable, "-m", "inference_server.bench.cli", "--compare", "eager",
         f"eager+{missing}"],
        capture_output=True, text=True, timeout=120, env=cli_env(),
    )  # fmt: skip
    assert out.returncode == 2 and str(missing) in out.stderr and "Traceback" not in out.stderr


def test_tutorial_ipex_recipe_runs_in_its_own_venv(tmp_path):
    """hack/test.sh provides the IPEX venv (hack/ipex-venv.sh: torch 2.8, transformers 4.55).
    A checkpoint written there (old transformers, like the published sdxl-turbo) is loaded by
    both workers through our loader; the optimize + trace + freeze recipe's image matches
    eager's in the same venv (same weights, same seed, same library versions)."""
    ipex_python = os.environ.get("T2I_IPEX_PYTHON")
    if not ipex_python:
        pytest.skip("T2I_IPEX_PYTHON unset: run via hack/test.sh, or bash hack/ipex-venv.sh")
    save = "import sys, inference_server.tiny_model as m; m.save_tiny_pipeline(sys.argv[1])"
    subprocess.run([ipex_python, "-c", save, str(tmp_path)], env=cli_env(), check=True, timeout=300)
    report = run_bench(
        "--model", str(tmp_path), "--bf16", "--height", "64", "--width", "64", "--repeat", "2",
        "--no-flops", "--compare", f"eager@{ipex_python}", f"ipex@{ipex_python}",
    )  # fmt: skip
    sides = report["result"]["sides"]
    assert {side["backend"] for side in sides.values()} == {"eager", "ipex"}
    assert all(side["torch"].startswith("2.8") for side in sides.values())
    assert all(len(side["latencies_s"]) == 2 for side in sides.values())
    assert report["result"]["psnr_db_b_vs_a"] > 30


def test_startup_bench_times_a_real_server_until_ready(tiny_model_dir):
    command = [sys.executable, "-m", "inference_server.bench.startup", "--runs", "1"]
    command += ["--model-dir", str(tiny_model_dir)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, env=cli_env())
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = json.loads(out.stdout.strip().splitlines()[-1])["runs"]
    assert run["ready_s"] > 0 and run["peak_rss_gb"] > 0.1


def test_startup_bench_reports_a_server_that_cannot_start(tmp_path):
    command = [sys.executable, "-m", "inference_server.bench.startup", "--runs", "1"]
    command += ["--model-dir", str(tmp_path / "missing")]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, env=cli_env())
    assert out.returncode != 0 and "does not exist" in out.stderr
