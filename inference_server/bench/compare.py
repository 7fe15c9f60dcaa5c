"""``t2i-bench --compare A B``: two configurations timed interleaved (A, B, A, B, …).

Each configuration runs in its own worker process, so each has its own memory and may run in
another interpreter (``ipex@/path/to/python`` runs the tutorial's IPEX recipe in its own venv).
Interleaving spreads the noise of a shared or thermally varying CPU evenly over both sides; the
ratio is reported per pair, with its median and range, not just as a ratio of means. The worker
not being timed is paused (SIGSTOP): an idle worker's OpenMP threads may still spin and slow
the timed side (BENCHMARKS.md, "Earlier rows (second session)").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


class WorkerFailed(RuntimeError):
    """A worker exited or reported an error; its own stderr (inherited) says why."""


ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class Side:
    """One configuration: a backend, its process environment and the interpreter that runs it."""

    label: str
    backend: str
    python: str
    preload: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ready: dict = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    done: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @classmethod
    def parse(cls, spec: str) -> Side:
        """``BACKEND[+EXTRA...][@PYTHON]``: each EXTRA is ``NAME=VALUE`` (set in the worker's
        environment, e.g. glibc malloc tunables) or a library LD_PRELOADed into it (jemalloc,
        tcmalloc); PYTHON is an interpreter of another venv. t2i-bench's argument parser has
        already checked the backend name and that each library exists."""
        configured, _, python = spec.partition("@")
        backend, *extras = configured.split("+")
        env = dict(extra.split("=", 1) for extra in extras if ENV_ASSIGNMENT.match(extra))
        preload = [extra for extra in extras if not ENV_ASSIGNMENT.match(extra)]
        names = [Path(lib).name for lib in preload] + [f"{k}={v}" for k, v in env.items()]
        label = "+".join([backend, *names])
        return cls(
            label=label + (f"@{Path(python).parent.parent.name}" if python else ""),
            backend=backend,
            python=python or sys.executable,
            preload=preload,
            env=env,
        )


def worker_command(side: Side, argv: list[str], image_out: Path) -> list[str]:
    return [
        side.python,
        "-m",
        "inference_server.bench.worker",
        *argv,
        "--backend",
        side.backend,
        "--image-out",
        str(image_out),
    ]


def _read_event(side: Side, expected: str) -> dict:
    assert side.process and side.process.stdout
    for line in side.process.stdout:
        if line.startswith("{"):
            event = json.loads(line)
            if event["event"] == expected:
                return event
            if event["event"] == "error":
                raise WorkerFailed(f"{side.label}: {event['message']}")
    raise WorkerFailed(f"worker {side.label} {_exit_reason(side)} before '{expected}'")


def _exit_reason(side: Side) -> str:
    assert side.process
    code = side.process.wait()
    if code == -signal.SIGKILL:
        return "was killed (SIGKILL: the OOM killer, if memory ran out; see dmesg)"
    return f"exited with {code} (see its stderr above)"


def _send(side: Side, command: str) -> None:
    """Resume the worker and give it ``command``; a worker that died is a WorkerFailed."""
    assert side.process and side.process.stdin
    side.process.send_signal(signal.SIGCONT)
    try:
        side.process.stdin.write(f"{command}\n")
        side.process.stdin.flush()
    except BrokenPipeError:
        raise WorkerFailed(f"worker {side.label} {_exit_reason(side)}") from None


def start(side: Side, argv: list[str], image_out: Path) -> None:
    """Start the worker and wait until it is warmed, so start-ups do not overlap timed calls."""
    env = dict(os.environ, PYTHONPATH=_joined(str(REPO_ROOT), os.environ.get("PYTHONPATH")))
    env.update(side.env)
    if side.preload:
        env["LD_PRELOAD"] = _joined(*side.preload, os.environ.get("LD_PRELOAD"), separator=" ")
    print(f"starting {side.label} ...", file=sys.stderr, flush=True)
    side.process = subprocess.Popen(
        worker_command(side, argv, image_out),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    side.ready = _read_event(side, "ready")
    side.process.send_signal(signal.SIGSTOP)  # paused while the other side works
    print(f"{side.label} ready in {side.ready['startup_s']:.1f} s", file=sys.stderr, flush=True)


def _joined(*parts: str | None, separator: str = os.pathsep) -> str:
    return separator.join(part for part in parts if part)


def timed(side: Side) -> float:
    """One timed call; the worker runs only for its duration (SIGCONT ... SIGSTOP)."""
    _send(side, "run")
    seconds = _read_event(side, "timed")["seconds"]
    side.process.send_signal(signal.SIGSTOP)
    side.seconds.append(seconds)
    return seconds


def stop(side: Side) -> None:
    if side.process is None or side.process.poll() is not None:
        return
    _send(side, "quit")
    side.done = _read_event(side, "done")
    side.process.wait(timeout=60)


def psnr(path_a: Path, path_b: Path) -> float | None:
    """PSNR (dB) of two 8-bit RGB images; None if either is missing; inf when identical."""
    if not (path_a.is_file() and path_b.is_file()):
        return None
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(path_a).convert("RGB"), dtype=np.float64)
    b = np.asarray(Image.open(path_b).convert("RGB"), dtype=np.float64)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def per_image(side: Side, seconds: float) -> float:
    return seconds / side.ready["batch"]


def summarize(a: Side, b: Side, image_psnr: float | None) -> dict:
    """Per-pair speed-up of B per image (sides may run different batches), with its spread."""
    ratios = [
        per_image(a, ta) / per_image(b, tb) for ta, tb in zip(a.seconds, b.seconds, strict=True)
    ]
    sides = {}
    for side in (a, b):
        mean, batch = statistics.fmean(side.seconds), side.ready["batch"]
        flops = (side.ready.get("flops_per_image") or {}).get("total")
        sides[side.label] = {
            **{k: v for k, v in side.ready.items() if k not in ("event", "cpu")},
            "latencies_s": [round(s, 4) for s in side.seconds],
            "s_per_image": mean / batch,
            "images_per_s": batch / mean,
            "tflops": flops / (mean / batch) / 1e12 if flops else None,
            "peak_rss_gb": side.done.get("peak_rss_gb"),
        }
    return {
        "a": a.label,
        "b": b.label,
        "sides": sides,
        "speedup_b_over_a": {
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
            "pairs": [round(r, 4) for r in ratios],
            "ratio_of_means": sides[a.label]["s_per_image"] / sides[b.label]["s_per_image"],
        },
        "psnr_db_b_vs_a": image_psnr,
    }


def run_compare(args: argparse.Namespace, worker_argvs: list[list[str]]) -> dict:
    """Start both workers (``worker_argvs``: A's and B's flags), time ``args.repeat``
    interleaved pairs, stop both, summarize."""
    a, b = (Side.parse(spec) for spec in args.compare)
    for side, batch in zip((a, b), args.compare_batches or (), strict=False):
        side.label += f" batch {batch}"
    if a.label == b.label:  # the same configuration twice: keep both apart in the report
        a.label, b.label = f"{a.label} (A)", f"{b.label} (B)"
    with tempfile.TemporaryDirectory(prefix="t2i-compare-") as scratch:
        images = Path(scratch) / "a.png", Path(scratch) / "b.png"
        try:
            # FLOPs depend on the model and the shape, not the backend: count them once (A).
            start(a, worker_argvs[0], images[0])
            start(b, [*worker_argvs[1], "--no-flops"], images[1])
            b.ready["flops_per_image"] = a.ready.get("flops_per_image")  # per image
            for round_ in range(args.repeat):
                ta, tb = timed(a), timed(b)
                print(
                    f"pair {round_ + 1}: {a.label} {ta:.3f} s, {b.label} {tb:.3f} s, "
                    f"ratio per image {per_image(a, ta) / per_image(b, tb):.3f}",
                    file=sys.stderr,
                    flush=True,
                )
            for side in (a, b):
                stop(side)
        finally:
            for side in (a, b):
                if side.process and side.process.poll() is None:
                    side.process.kill()  # SIGKILL also ends a stopped process
        # Other batches draw other noise for their first image: no like-for-like PSNR.
        same_batch = a.ready["batch"] == b.ready["batch"]
        return summarize(a, b, psnr(*images) if same_batch else None)
