"""Time a server restart: ``t2i-server`` start → ``/readyz`` 200 (model loaded, graphs warmed).

Run it twice in a row: the second run is the "restart with warm caches" a rescheduled pod sees
on the same node (page cache holds the weights; the inductor cache holds compiled kernels).
Prints one JSON line: seconds to ready and the server's peak RSS.

    python -m inference_server.bench.startup --model-dir DIR [--backend compile] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_gb(pid: int) -> float:
    """VmHWM of the server process (its peak resident set), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def time_start(args: argparse.Namespace) -> dict:
    port = free_port()
    command = [sys.executable, "-m", "inference_server.cli", "--model-dir", args.model_dir]
    command += ["--port", str(port), "--host", "127.0.0.1", "--backend", args.backend]
    command += ["--warmup-sizes", args.warmup_sizes, "--output-dir", tempfile.mkdtemp()]
    with tempfile.TemporaryFile(prefix="t2i-startup-") as log:
        start = time.perf_counter()
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            while not ready(port):
                if server.poll() is not None:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise SystemExit(f"server exited with {server.returncode}:\n{tail}")
                if time.perf_counter() - start > args.timeout:
                    raise SystemExit(f"server not ready after {args.timeout} s")
                time.sleep(0.25)  # polling an HTTP endpoint: there is no event to wait on
            seconds = time.perf_counter() - start
            return {"ready_s": seconds, "peak_rss_gb": peak_rss_gb(server.pid)}
        finally:
            server.terminate()
            server.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--warmup-sizes", default="512x512")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    runs = [time_start(args) for _ in range(args.runs)]
    report = {"backend": args.backend, "runs": runs, "threads_env": os.environ.get("T2I_THREADS")}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
