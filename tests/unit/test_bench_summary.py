"""hack/bench_summary.py turns a benchmark run's JSON files into BENCHMARKS.md table rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "bench_summary.py"


def summarize(directory: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(directory)], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_single_compare_startup_and_failed_rows(tmp_path: Path) -> None:
    (tmp_path / "cpu.txt").write_text("Model name:      AMD EPYC\nCPU(s):    2\n")
    single = {
        "bf16_matmul_peak_tflops": 0.42,
        "result": {
            "backend": "packed",
            "height": 512,
            "width": 512,
            "batch": 1,
            "latencies_s": [30.0, 21.0, 23.0],
            "s_per_image": 22.0,
            "images_per_s": 1 / 22.0,
            "tflops": 0.408,
            "pct_of_bf16_peak": 97.1,
            "startup_s": 40.5,
            "peak_rss_gb": 7.9,
            "allocator": "tcmalloc",
        },
    }
    side = {"s_per_image": 25.0, "pct_of_bf16_peak": 85.0, "startup_s": 60.0, "peak_rss_gb": 12.0}
    compare = {
        "bf16_matmul_peak_tflops": 0.41,
        "result": {
            "a": "ipex",
            "b": "packed",
            "sides": {"ipex": side, "packed": {**side, "s_per_image": 20.0}},
            "speedup_b_over_a": {
                "median": 1.25,
                "min": 1.2,
                "max": 1.3,
                "pairs": [1.2, 1.25, 1.3],
                "ratio_of_means": 1.25,
            },
            "psnr_db_b_vs_a": None,
        },
    }
    startup = {"backend": "packed", "runs": [{"ready_s": 31.25, "peak_rss_gb": 7.5}]}
    (tmp_path / "packed.json").write_text(json.dumps(single))
    (tmp_path / "compare-ipex.json").write_text(json.dumps(compare))
    (tmp_path / "startup-packed.json").write_text(json.dumps(startup))
    (tmp_path / "int8.json").write_text("")

    out = summarize(tmp_path)

    assert "CPU: Model name: AMD EPYC; CPU(s): 2" in out
    assert "| packed | packed | 512² | 1 | 22.00 (21.00, 23.00) |" in out
    assert "97.1 % of 0.420" in out
    assert "| compare-ipex | ipex → packed | **1.250x** | 1.200-1.300 (3 pairs) | 1.250 |" in out
    assert "25.00, 20.00" in out
    assert "startup-packed: ready after 31.2 s (7.50 GB)" in out
    assert "no result (still running, or the row failed; see the log): int8" in out
