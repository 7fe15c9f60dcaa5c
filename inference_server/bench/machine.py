"""What the figures ran on: the CPU, its matmul peaks and this process's peak memory.

Absolute seconds mean nothing across CPUs (AMX vs AVX-512 BF16 differ ~6x), so every report
names the CPU and carries a peak measured in the same run as the denominator for "% of peak".
"""

from __future__ import annotations

import resource
import time

import torch

from inference_server.cpu import ISA_FLAGS, cpu_info

__all__ = [
    "ISA_FLAGS",
    "best_seconds",
    "cpu_info",
    "int8_matmul_peak_tops",
    "matmul_peak_tflops",
    "peak_rss_gb",
]


def best_seconds(run, repeat: int = 3) -> float:
    """The fastest of ``repeat`` timed calls, after one untimed call (allocation, oneDNN
    primitive creation, AMX tile configuration)."""
    run()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _best_rate(run, work: float, repeat: int) -> float:
    return work / best_seconds(run, repeat) / 1e12


def matmul_peak_tflops(sizes=(2048, 4096), repeat: int = 3) -> float:
    """Best bf16 square matmul rate: the denominator for '% of peak'."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, dtype=torch.bfloat16)
        b = torch.randn(n, n, dtype=torch.bfloat16)
        best = max(best, _best_rate(lambda a=a, b=b: a @ b, 2 * n**3, repeat))
    return best


def int8_matmul_peak_tops(sizes=(2048, 4096), repeat: int = 3) -> float:
    """Best int8 x int8 → int32 matmul rate (torch._int_mm, oneDNN; AMX-INT8 where present)."""
    best = 0.0
    for n in sizes:
        a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        best = max(best, _best_rate(lambda a=a, b=b: torch._int_mm(a, b), 2 * n**3, repeat))
    return best


def peak_rss_gb() -> float:
    """This process's peak resident set (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
