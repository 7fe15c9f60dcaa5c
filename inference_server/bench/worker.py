"""A ``--compare`` worker: one configuration in its own process (possibly another venv).

Protocol, one JSON object per line: the worker prints ``{"event": "ready", ...}`` once its
pipeline is loaded, prepared and warmed; for each ``run`` line on stdin it makes one timed call
and prints ``{"event": "timed", "seconds": s}``; on ``quit`` it prints ``{"event": "done",
"peak_rss_gb": ...}`` and exits. The first timed call's first image is saved to ``--image-out``
so the parent can compare outputs of the same seed (PSNR). Logs go to stderr.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import sys

from inference_server.bench.cli import parse_args
from inference_server.bench.machine import cpu_info, peak_rss_gb
from inference_server.bench.runner import BenchSession


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def release_free_memory() -> None:
    """Return the heap freed by preparation (tracing, freezing) to the OS, so the two workers
    of a comparison fit in memory together (glibc keeps it otherwise: an IPEX worker held
    18.8 GB after tracing and was OOM-killed beside an eager one)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    # A preloaded tcmalloc keeps freed pages cached (an IPEX worker kept 17.6 GB and was
    # OOM-killed beside an eager one); its C API hands them back.
    with contextlib.suppress(AttributeError):
        ctypes.CDLL(None).MallocExtension_ReleaseFreeMemory()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    session = BenchSession(args)
    release_free_memory()
    emit(
        "ready",
        **session.describe(),
        cpu=cpu_info(),
        load_s=session.load_s,
        prepare_s=session.prepare_s,
        warmup_s=session.warmup_s,
        startup_s=session.startup_s,
        flops_per_image=session.flops,
    )
    saved = False
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if command != "run":
            emit("error", message=f"unknown command {command!r}")
            continue
        seconds, images = session.timed_call()
        if args.image_out and not saved:
            images[0].save(args.image_out)
            saved = True
        emit("timed", seconds=seconds)
    emit("done", peak_rss_gb=peak_rss_gb())
    return 0


if __name__ == "__main__":
    sys.exit(main())
