"""Benchmark: queue-depth autoscaling on the real node (issue 19), tiny pipeline.

Runs tests/realnode/test_keda_autoscale.py (KEDA + Prometheus + the cluster's HPA controller, see
that test) with T2I_AUTOSCALE_EVENTS set, then prints
  - load step → second replica Ready (s)
  - load stopped (idle) → Deployment scaled back to 1 replica (s)
and the CPU model, for BENCHMARKS.md. Usage: python hack/bench_autoscale.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next(
        (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
        "?",
    )


def one_run() -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        events_path = Path(f.name)
    env = {**os.environ, "T2I_AUTOSCALE_EVENTS": str(events_path)}
    r = subprocess.run(
        ["bash", "hack/test.sh", "tests/realnode/test_keda_autoscale.py", "-q", "-x"],
        cwd=ROOT,
        env=env,
    )
    events = json.loads(events_path.read_text() or "{}")
    events_path.unlink(missing_ok=True)
    if r.returncode:
        sys.exit(f"the autoscaling test failed (rc {r.returncode}); events so far: {events}")
    return {
        "scale_up_s": events["second_replica_ready"] - events["load_start"],
        "scale_down_s": events["scaled_down"] - events["load_stop"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    results = [one_run() for _ in range(args.runs)]
    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs visible)")
    for i, res in enumerate(results, 1):
        print(
            f"run {i}: load step -> 2nd replica Ready {res['scale_up_s']:.1f} s; "
            f"idle -> scaled down to 1 {res['scale_down_s']:.1f} s"
        )


if __name__ == "__main__":
    main()
