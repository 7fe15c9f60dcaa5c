"""Helpers for the server tests, in a uniquely named module: tests/ holds several conftest.py,
so ``from conftest import ...`` could pick up the wrong one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import requests
from PIL import Image

# Test the checkout this file lives in, whichever clone the shared venv's editable install
# currently points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hack import support
from hack.support import free_port
from inference_server.app import create_app
from inference_server.config import ServerConfig
from inference_server.engine.interface import BatchRequest
from inference_server.engine.pipeline import DiffusersEngine

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    """The CLI subprocess imports this checkout too (see the sys.path note above)."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``t2i-server`` to completion (for start-up errors), with extra environment ``env``."""
    return subprocess.run(
        [str(BIN / "t2i-server"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**cli_env(), **env},
    )


def wait_for(condition: Callable[[], object], timeout: float = 60.0, what: str = "condition"):
    """hack.support.wait_for in this module's argument order, polling every 20 ms."""
    return support.wait_for(condition, what, timeout, interval=0.02)


class LoadedEngine:
    """The session engine seen by one app: ``load`` is a no-op, optional gate before generate.

    Why: ``Runtime.start`` calls ``engine.load()``; reloading the real pipeline for every app
    would cost seconds. Generation still runs the real pipeline.
    """

    def __init__(self, real: DiffusersEngine, gated: bool = False) -> None:
        self.real = real
        self.ready = real.ready
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def load(self) -> None:
        pass

    def generate(self, batch: BatchRequest) -> list:
        self.entered.set()
        assert self.gate.wait(60), "test never opened the gate"
        self.batches.append(len(batch.prompts))
        return self.real.generate(batch)


class FakeEngine:
    """A stand-in for HTTP-edge tests: solid-colour images, controllable load and failure."""

    def __init__(self, loaded: bool = True, block: bool = False) -> None:
        self.ready = threading.Event()
        self.loaded_event = threading.Event()
        if loaded:
            self.loaded_event.set()
        self.gate = threading.Event()
        if not block:
            self.gate.set()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def load(self) -> None:
        self.loaded_event.wait(60)
        self.ready.set()

    def generate(self, batch: BatchRequest) -> list:
        self.entered.set()
        assert self.gate.wait(60), "test never opened the gate"
        self.batches.append(len(batch.prompts))
        return [
            Image.new("RGB", (batch.width, batch.height), (seed % 256, 0, 0))
            for seed in batch.seeds
        ]


def make_app(engine, tmp_path: Path, **config):
    app = create_app(ServerConfig(output_dir=tmp_path / "out", **config), engine)
    return app


class CliServer:
    def __init__(self, process: subprocess.Popen, port: int, output_dir: Path, log: Path):
        self.process = process
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.output_dir = output_dir
        self.log = log


def start_cli(
    model_dir: Path,
    work: Path,
    *extra: str,
    prefix: tuple[str, ...] = (),
    ready_timeout: float = 300,
) -> CliServer:
    """``t2i-server`` on the tiny model in a subprocess (optionally under ``prefix``, e.g.
    ``unshare``), returned once /readyz is 200; stderr goes to ``work/stderr.log``."""
    output_dir, log = work / "out", work / "stderr.log"
    port = free_port()
    argv = [
        *prefix,
        str(BIN / "t2i-server"),
        "--model-dir",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--output-dir",
        str(output_dir),
        "--threads",
        "2",
        *extra,
    ]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=stderr, env=cli_env(), start_new_session=True
        )
    server = CliServer(process, port, output_dir, log)

    def ready() -> bool:
        assert process.poll() is None, f"t2i-server exited: {log.read_text()}"
        try:
            return requests.get(f"{server.base}/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(ready, timeout=ready_timeout, what="t2i-server /readyz")
    except BaseException:
        stop_cli(server)
        raise
    return server


def terminate_cli(server: CliServer) -> None:
    """SIGTERM (the server's graceful path), SIGKILL if it has not exited within 20 s."""
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def stop_cli(server: CliServer) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)
