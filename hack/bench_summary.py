#!/usr/bin/env python3
"""Print the rows of one `hack/bench_inference.sh` run as BENCHMARKS.md-style Markdown tables.

    python3 hack/bench_summary.py .bench-results/<run>

Reads the `<row>.json` files the script wrote (stdlib only, so any python3 runs it). Empty
results (a row still running, or one that failed) are listed as such, not skipped silently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def peak_of(report: dict) -> str:
    """The run's measured bf16 peak (absent with t2i-bench --no-peak)."""
    return fmt(report.get("bf16_matmul_peak_tflops"), 3)


def single_row(name: str, report: dict) -> str:
    r = report["result"]
    size = f"{r['height']}²" if r["height"] == r["width"] else f"{r['height']}x{r['width']}"
    timed = ", ".join(f"{s:.2f}" for s in r["latencies_s"][1:])
    extra = []
    if "psnr_db_vs_reference" in r:
        extra.append(f"PSNR {r['psnr_db_vs_reference']:.1f} dB vs reference")
    if r.get("allocator"):
        extra.append(r["allocator"])
    return (
        f"| {name} | {r['backend']} | {size} | {r['batch']} | {r['s_per_image']:.2f} ({timed}) | "
        f"{r['images_per_s']:.3f} | {fmt(r.get('tflops'))} | "
        f"{fmt(r.get('pct_of_bf16_peak'), 1, ' %')} of {peak_of(report)} | "
        f"{r['startup_s']:.1f} s | {r['peak_rss_gb']:.2f} GB | {'; '.join(extra)} |"
    )


def compare_row(name: str, report: dict) -> str:
    r = report["result"]
    a, b = (r["sides"][r[key]] for key in ("a", "b"))
    s = r["speedup_b_over_a"]
    psnr = r.get("psnr_db_b_vs_a")
    return (
        f"| {name} | {r['a']} → {r['b']} | **{s['median']:.3f}x** | {s['min']:.3f}-{s['max']:.3f} "
        f"({len(s['pairs'])} pairs) | {s['ratio_of_means']:.3f} | "
        f"{a['s_per_image']:.2f}, {b['s_per_image']:.2f} | "
        f"{fmt(a.get('pct_of_bf16_peak'), 1)}, {fmt(b.get('pct_of_bf16_peak'), 1)} of "
        f"{peak_of(report)} | "
        f"{fmt(a.get('startup_s'), 1)}, {fmt(b.get('startup_s'), 1)} s | "
        f"{fmt(a.get('peak_rss_gb'))}, {fmt(b.get('peak_rss_gb'))} GB | "
        f"{'—' if psnr is None else f'{psnr:.1f} dB'} |"
    )


def main(directory: str) -> int:
    out = Path(directory)
    singles, compares, other, failed = [], [], [], []
    for path in sorted(out.glob("*.json")):
        text = path.read_text().strip()
        if not text:
            failed.append(path.stem)
            continue
        report = json.loads(text)
        result = report.get("result", {})
        if "sides" in result:
            compares.append(compare_row(path.stem, report))
        elif "s_per_image" in result:
            singles.append(single_row(path.stem, report))
            if "profile" in result:
                p = result["profile"]
                shares = ", ".join(f"{k} {v:.1%}" for k, v in p["share_by_kind"].items())
                other.append(f"- {path.stem}: self CPU {p['self_cpu_s_total']:.2f} s; {shares}")
        elif "runs" in report:
            runs = ", ".join(
                f"{run['ready_s']:.1f} s ({run['peak_rss_gb']:.2f} GB)" for run in report["runs"]
            )
            other.append(f"- {path.stem}: ready after {runs}")
        else:
            other.append(f"- {path.stem}: {json.dumps(report)[:400]}")
    cpu = (out / "cpu.txt").read_text().split("\n") if (out / "cpu.txt").exists() else []
    print("CPU:", "; ".join(" ".join(line.split()) for line in cpu if line.strip()))
    print(
        "\n| row | backend | size | batch | s/image (timed calls) | images/s | TFLOPS "
        "| % of bf16 peak | start-up | peak RSS | notes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(singles))
    print(
        "\n| row | A → B | median speed-up of B | range | ratio of means | s/image A, B "
        "| % of peak A, B | start-up A, B | peak RSS A, B | PSNR B vs A |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(compares))
    print("\n" + "\n".join(other))
    if failed:
        print("\nno result (still running, or the row failed; see the log):", ", ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
