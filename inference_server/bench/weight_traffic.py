"""Why batch-1 GEMMs run below the peak: the same packed GEMM with its weight hot in cache and
cycling through distinct weights (as a UNet step does), beside the memory bandwidth.

A UNet step reads each of its 5.1 GB of bf16 weights once; at batch 1 each weight meets only
256-1024 activation rows, so the GEMMs wait on memory. Prints one JSON line.

    python -m inference_server.bench.weight_traffic [--threads 2]
"""

from __future__ import annotations

import argparse
import json

import torch

from inference_server.bench.machine import best_seconds, cpu_info, matmul_peak_tflops

# (rows, in, out): SDXL UNet linears at 512x512, batch 1 — the 1280-channel blocks' attention
# projections, GEGLU halves and feed-forward output, and the 640-channel blocks' GEGLU half
UNET_GEMMS = ((256, 1280, 1280), (256, 1280, 5120), (256, 5120, 1280), (1024, 640, 2560))
COLD_BYTES = 768 * 2**20  # distinct weights per cold pass: far beyond any last-level cache


def gemm_rates(rows: int, inputs: int, outputs: int) -> dict:
    """TFLOPS of one packed GEMM shape, weight hot vs a fresh weight on every call."""
    linear = torch.ops.mkldnn._linear_pointwise
    x = torch.randn(rows, inputs, dtype=torch.bfloat16)
    copies = max(2, COLD_BYTES // (inputs * outputs * 2))
    weights = [
        torch.ops.mkldnn._reorder_linear_weight(
            torch.randn(outputs, inputs, dtype=torch.bfloat16), rows
        )
        for _ in range(copies)
    ]

    def hot() -> None:
        for _ in weights:
            linear(x, weights[0], None, "none", [], "")

    def cold() -> None:
        for weight in weights:
            linear(x, weight, None, "none", [], "")

    flops = 2 * rows * inputs * outputs * copies
    return {
        "shape": [rows, inputs, outputs],
        "hot_tflops": round(flops / best_seconds(hot) / 1e12, 2),
        "cold_tflops": round(flops / best_seconds(cold) / 1e12, 2),
        "cold_weight_mb": round(copies * inputs * outputs * 2 / 2**20),
    }


def memory_bandwidth_gb_s(gib: float = 1.0) -> dict:
    """Read (a sum) and copy bandwidth over a buffer far larger than the caches."""
    source = torch.ones(int(gib * 2**30) // 2, dtype=torch.bfloat16)
    target = torch.empty_like(source)
    size = source.numel() * 2
    read = size / best_seconds(lambda: source.sum()) / 1e9
    copy = 2 * size / best_seconds(lambda: target.copy_(source)) / 1e9
    return {"read_gb_s": round(read, 1), "copy_gb_s": round(copy, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with torch.inference_mode():
        report = {
            "cpu": cpu_info(),
            "threads": torch.get_num_threads(),
            "bf16_matmul_peak_tflops": round(matmul_peak_tflops(), 2),
            "memory": memory_bandwidth_gb_s(),
            "gemms": [gemm_rates(*shape) for shape in UNET_GEMMS],
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
