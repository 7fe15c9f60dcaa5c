"""hack/bench_plots.py draws BENCHMARKS.md's figures as PNGs from JSON rows (Agg, no display)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hack" / "bench_plots.py"
NAMES = ("backends.png", "batch.png", "operator.png")


def plot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def row(label: str, backend: str, batch: int, seconds: float) -> dict:
    return {
        "label": label,
        "backend": backend,
        "height": 512,
        "width": 512,
        "batch": batch,
        "s_per_image": seconds,
        "pct_of_bf16_peak": 50.0,
    }


def fixture(tmp_path: Path, rows: list[dict]) -> Path:
    data = {
        "cpus": [{"name": "Test CPU", "rows": rows}],
        "operator": {
            "name": "test cluster",
            "apply_to_ready_s": {"crs": 5, "p50": 0.2, "p95": 0.3, "max": 0.4, "mean": 0.2},
            "burst": {
                "crs": 10,
                "created_s": 1.0,
                "target_s": 120,
                "ready_at_s": {"0.5": 5.0, "1.0": 9.0},
            },
        },
    }
    path = tmp_path / "figures.json"
    path.write_text(json.dumps(data))
    return path


def assert_pngs(directory: Path) -> None:
    for name in NAMES:
        with Image.open(directory / name) as image:
            assert image.format == "PNG"
            image.verify()
        with Image.open(directory / name) as image:
            width, height = image.size
            assert width >= 600 and height >= 300, name
            darkest, lightest = image.convert("L").getextrema()
            assert darkest < 100 < lightest, name  # something drawn on the white background


def test_writes_three_valid_pngs_from_rows_and_a_bench_run(tmp_path: Path) -> None:
    data = fixture(
        tmp_path,
        [
            row("packed (default)", "packed", 1, 6.0),
            row("eager", "eager", 1, 7.0),
            row("packed b4", "packed", 4, 5.0),
        ],
    )
    run = tmp_path / "run"
    run.mkdir()
    result = {**row("", "packed", 1, 20.0), "allocator": "tcmalloc"}
    del result["label"]
    (run / "packed.json").write_text(json.dumps({"result": result}))
    (run / "int8.json").write_text("")  # a row still running: skipped
    out = tmp_path / "out"
    done = plot("--data", str(data), "--run", f"Other CPU={run}", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(out / name) for name in NAMES]
    assert_pngs(out)


def test_the_committed_figures_render(tmp_path: Path) -> None:
    done = plot("--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert_pngs(tmp_path)


def test_a_row_missing_a_figure_is_named(tmp_path: Path) -> None:
    broken = row("eager", "eager", 1, 7.0)
    del broken["s_per_image"]
    done = plot("--data", str(fixture(tmp_path, [broken])), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert "Test CPU: row 'eager' lacks s_per_image" in done.stderr
    assert "Traceback" not in done.stderr
