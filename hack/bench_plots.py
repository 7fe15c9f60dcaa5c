#!/usr/bin/env python3
"""Draw BENCHMARKS.md's key figures as PNGs: s/image and % of peak per backend on each CPU,
batch scaling, and the operator's apply→Ready latencies.

    V=$(bash hack/venv.sh); $V/bin/python hack/bench_plots.py              # docs/bench/*.png
    $V/bin/python hack/bench_plots.py --run "My CPU=.bench-results/<run>"  # add a fresh run

The figures come from ``docs/bench/figures.json`` (rows in t2i-bench's ``--json`` field names,
transcribed from BENCHMARKS.md: earlier runs' raw JSON was not kept) plus, with ``--run``, the
``<row>.json`` files a ``hack/bench_inference.sh`` run wrote. Seconds are only compared within
one CPU, so every CPU gets its own panel.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI or in a pod
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
ROW_FIELDS = ("label", "backend", "height", "width", "batch", "s_per_image", "pct_of_bf16_peak")


def rows_from_run(directory: Path) -> list[dict]:
    """Single rows and both sides of comparisons from one bench_inference.sh output directory
    (empty files — rows still running or failed — are skipped, as bench_summary lists them)."""
    rows = []
    for path in sorted(directory.glob("*.json")):
        text = path.read_text().strip()
        result = json.loads(text).get("result", {}) if text else {}
        if "s_per_image" in result:
            label = " + ".join(filter(None, [result["backend"], result.get("allocator")]))
            rows.append({**result, "label": f"{label}, batch {result['batch']}"})
        for name, side in result.get("sides", {}).items():
            rows.append(
                {"height": 512, "width": 512, "batch": 1, "backend": name.split("+")[0], **side}
                | {"label": name.replace("$", "")}
            )
    return rows


def check_row(row: dict, where: str) -> None:
    missing = [name for name in ROW_FIELDS if row.get(name) is None]
    if missing:
        raise ValueError(f"{where}: row {row.get('label', '?')!r} lacks {', '.join(missing)}")


def backends_figure(cpus: list[dict], path: Path) -> None:
    """Per CPU: s/image of each backend (512², batch 1), labelled with its % of the bf16 peak."""
    fig, axes = plt.subplots(1, len(cpus), figsize=(6.2 * len(cpus), 3.6), squeeze=False)
    for ax, cpu in zip(axes[0], cpus, strict=True):
        rows = [
            r for r in cpu["rows"] if r["batch"] == 1 and (r["height"], r["width"]) == (512, 512)
        ]
        rows.sort(key=lambda r: r["s_per_image"], reverse=True)
        bars = ax.barh(
            [r["label"] for r in rows],
            [r["s_per_image"] for r in rows],
            color=["#2457c5" if "default" in r["label"] else "#9aa9c9" for r in rows],
        )
        for bar, row in zip(bars, rows, strict=True):
            ax.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {row['s_per_image']:.2f} s · {row['pct_of_bf16_peak']:.0f} % of peak",
                va="center",
                fontsize=8,
            )
        ax.set_xlim(0, max(r["s_per_image"] for r in rows) * 1.55)
        ax.set_xlabel("seconds per 512² image (4 steps, batch 1; lower is better)")
        ax.set_title(cpu["name"], fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("SDXL-Turbo per backend: s/image and % of the measured bf16 matmul peak")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def batch_figure(cpus: list[dict], path: Path) -> None:
    """Per-image speed-up of larger batches over batch 1 for each CPU's default backend."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.35
    for index, cpu in enumerate(cpus):
        packed = sorted(
            (
                r
                for r in cpu["rows"]
                if r["backend"] == "packed" and (r["height"], r["width"]) == (512, 512)
            ),
            key=lambda r: r["batch"],
        )
        base = next(r["s_per_image"] for r in packed if r["batch"] == 1)
        for offset, row in enumerate(packed):
            x = index + (offset - (len(packed) - 1) / 2) * width
            speedup = base / row["s_per_image"]
            ax.bar(x, speedup, width * 0.9, color="#2457c5" if row["batch"] > 1 else "#9aa9c9")
            ax.text(
                x,
                speedup - 0.04,
                f"batch {row['batch']}\n{row['s_per_image']:.2f} s/img\n{speedup:.3f}x",
                ha="center",
                va="top",
                fontsize=8,
                color="white",
            )
    ax.axhline(
        1.3, color="#b3261e", linestyle="--", linewidth=1, label="issue 8 target with AMX: 1.3x"
    )
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks(range(len(cpus)), [cpu["name"] for cpu in cpus], fontsize=8)
    ax.set_ylim(0, 1.6)
    ax.set_ylabel("images/s relative to batch 1")
    ax.set_title("Batch scaling of the default backend (packed, 512²)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def operator_figure(operator: dict, path: Path) -> None:
    """Left: apply→Ready latency of CRs applied one at a time. Right: a burst's Ready curve."""
    latency, burst = operator["apply_to_ready_s"], operator["burst"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = ["p50", "mean", "p95", "max"]
    left.bar(names, [latency[n] for n in names], color="#2457c5")
    for x, name in enumerate(names):
        left.text(x, latency[name], f"{latency[name]:.2f} s", ha="center", va="bottom", fontsize=8)
    left.set_ylabel("seconds")
    left.set_title(f"apply → Ready, {latency['crs']} CRs applied one at a time", fontsize=10)
    points = sorted((float(f) * 100, s) for f, s in burst["ready_at_s"].items())
    # Only the quartiles were recorded: markers, joined by a dotted guide, no invented curve.
    right.plot([s for _, s in points], [f for f, _ in points], "o:", color="#2457c5")
    for fraction, seconds in points:
        right.text(seconds + 2, fraction, f"{seconds} s", va="center", fontsize=8)
    right.axvline(burst["created_s"], color="#888", linestyle=":", linewidth=1)
    right.text(
        burst["created_s"],
        95,
        f" all {burst['crs']} applied\n ({burst['created_s']} s)",
        fontsize=8,
        va="top",
    )
    right.axvline(burst["target_s"], color="#b3261e", linestyle="--", linewidth=1)
    right.text(
        burst["target_s"],
        5,
        f"target {burst['target_s']} s ",
        color="#b3261e",
        ha="right",
        fontsize=8,
    )
    right.set_xlim(0, burst["target_s"] * 1.05)
    right.set_xlabel("seconds after the first apply")
    right.set_ylabel("% of CRs Ready")
    right.set_ylim(0, 105)
    right.set_title(
        f"{burst['crs']} CRs applied at once: when 25/50/75/100 % were Ready", fontsize=10
    )
    fig.suptitle(f"Operator: {operator['name']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "docs" / "bench" / "figures.json")
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="CPU NAME=DIR",
        help="add the rows of a bench_inference.sh output directory",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.data.read_text())
        cpus = list(data["cpus"])
        for spec in args.run:
            name, _, directory = spec.partition("=")
            if not directory:
                raise ValueError(f"--run {spec!r}: expected 'CPU NAME=DIR'")
            cpus.append({"name": name, "rows": rows_from_run(Path(directory))})
        for cpu in cpus:
            for row in cpu["rows"]:
                check_row(row, cpu["name"])
        args.out.mkdir(parents=True, exist_ok=True)
        written = [args.out / name for name in ("backends.png", "batch.png", "operator.png")]
        backends_figure(cpus, written[0])
        batch_figure(cpus, written[1])
        operator_figure(data["operator"], written[2])
    except (OSError, ValueError, KeyError, StopIteration) as error:
        print(f"bench_plots: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("\n".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
