"""Where an image's time goes: torch.profiler over one call, by operator and by kind.

"Matmul-class" operators (linear, conv, attention, batched matmul) are what the bf16 peak
measures; everything else (norms, activations, elementwise, copies, resampling) runs far below
it, so its share of the time bounds how close a whole image can get to the peak.
"""

from __future__ import annotations

from collections import defaultdict

import torch

MATMUL_OPS = (
    "addmm", "mm", "bmm", "baddbmm", "linear", "matmul", "conv", "mkldnn_convolution",
    "scaled_dot_product", "_flash_attention", "qlinear", "qconv", "_int_mm", "onednn",
)  # fmt: skip


def kind_of(name: str) -> str:
    lowered = name.lower()
    if any(op in lowered for op in MATMUL_OPS):
        return "matmul/conv/attention"
    if "norm" in lowered:
        return "normalization"
    if any(op in lowered for op in ("gelu", "silu", "sigmoid", "softmax", "tanh")):
        return "activation/softmax"
    if any(op in lowered for op in ("copy", "to_copy", "clone", "contiguous", "cat", "_to")):
        return "copies/layout"
    if any(op in lowered for op in ("upsample", "interpolate", "pad")):
        return "resampling"
    return "elementwise/other"


def profile_call(run) -> dict:
    """Profile ``run()``; return self-CPU seconds by kind, the top operators, and the top
    matmul-class calls by input shape (the same GEMM runs at very different rates depending on
    its rows and whether its weight is in cache; see bench.weight_traffic)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    with profile(activities=activities, record_shapes=True) as prof, torch.inference_mode():
        run()
    by_kind: dict[str, float] = defaultdict(float)
    ops = []
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        if seconds <= 0:
            continue
        by_kind[kind_of(event.key)] += seconds
        ops.append((seconds, event.key, event.count))
    total = sum(by_kind.values())
    ops.sort(reverse=True)
    return {
        "self_cpu_s_total": total,
        "share_by_kind": {k: v / total for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "top_ops": [{"op": key, "self_s": round(s, 3), "calls": n} for s, key, n in ops[:15]],
        "top_matmul_shapes": _top_matmul_shapes(prof),
    }


def _top_matmul_shapes(prof, count: int = 15) -> list[dict]:
    calls = [
        event
        for event in prof.key_averages(group_by_input_shape=True)
        if kind_of(event.key) == "matmul/conv/attention" and event.self_cpu_time_total > 0
    ]
    calls.sort(key=lambda event: -event.self_cpu_time_total)
    return [
        {
            "op": event.key,
            "input_shapes": [shape for shape in event.input_shapes if shape],
            "self_s": round(event.self_cpu_time_total / 1e6, 3),
            "calls": event.count,
            "ms_per_call": round(event.self_cpu_time_total / 1e3 / event.count, 3),
        }
        for event in calls[:count]
    ]
