"""Server fixtures: one real tiny SDXL pipeline per session, loaded through the production path.

The session engine is shared by the session app and the CLI-free helpers below; tests run one
at a time, so at most one Batcher worker calls ``engine.generate`` at once. HTTP-edge cases
(readiness, queue full, worker death) use small fake engines instead, like KServe's DummyModel.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image

# Test the checkout this file lives in, whichever clone the shared venv's editable install
# currently points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inference_server.app import create_app
from inference_server.config import ServerConfig
from inference_server.engine.pipeline import BatchRequest, DiffusersEngine, EngineConfig
from inference_server.tiny_model import save_tiny_pipeline

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    """The CLI subprocess imports this checkout too (see the sys.path note above)."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def wait_for(condition: Callable[[], object], timeout: float = 60.0, what: str = "condition"):
    """Poll ``condition`` until truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def engine(tiny_model_dir) -> DiffusersEngine:
    """Loaded once (Runtime.start would reload it per app, so apps below get a shim)."""
    real = DiffusersEngine(EngineConfig(model_dir=tiny_model_dir, threads=2))
    real.load()
    return real


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


@pytest.fixture(scope="session")
def session_app(engine, tmp_path_factory):
    """The production app on the real tiny pipeline (max_batch=4)."""
    app = create_app(
        ServerConfig(output_dir=tmp_path_factory.mktemp("session-out")), LoadedEngine(engine)
    )
    app.extensions["t2i"].start(load_in_background=False)
    yield app
    app.extensions["t2i"].batcher.stop()


@pytest.fixture
def client(session_app):
    return session_app.test_client()


@pytest.fixture
def app_factory(tmp_path) -> Iterator[Callable]:
    """Per-test apps; their workers are stopped at teardown."""
    apps = []

    def factory(engine, start: bool = True, background: bool = False, **config):
        app = make_app(engine, tmp_path, **config)
        apps.append(app)
        if start:
            app.extensions["t2i"].start(load_in_background=background)
        return app

    yield factory
    for app in apps:
        runtime = app.extensions["t2i"]
        for gate in ("gate", "loaded_event"):
            event = getattr(runtime.engine, gate, None)
            if event is not None:
                event.set()
        if runtime.is_started():
            runtime.batcher.stop()


class CliServer:
    def __init__(self, process: subprocess.Popen, port: int, output_dir: Path, log: Path):
        self.process = process
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.output_dir = output_dir
        self.log = log


@pytest.fixture(scope="session")
def cli_server(tiny_model_dir, tmp_path_factory) -> Iterator[CliServer]:
    """The real ``t2i-server`` entry point as a subprocess; stderr captured to a file."""
    work = tmp_path_factory.mktemp("cli")
    output_dir, log = work / "out", work / "stderr.log"
    port = free_port()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                str(BIN / "t2i-server"),
                "--model-dir",
                str(tiny_model_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--output-dir",
                str(output_dir),
                "--threads",
                "2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=cli_env(),
        )
    server = CliServer(process, port, output_dir, log)

    def ready() -> bool:
        assert process.poll() is None, f"t2i-server exited: {log.read_text()}"
        try:
            return requests.get(f"{server.base}/readyz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(ready, timeout=180, what="t2i-server /readyz")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
