"""Server fixtures: one real tiny SDXL pipeline per session, loaded through the production path.

The session engine is shared by the session app and per-test gated apps; tests run one at a time,
so at most one Batcher worker calls ``engine.generate`` at once. HTTP-edge cases (readiness,
queue full, worker death) use small fake engines instead, like KServe's DummyModel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from server_testlib import (
    CliServer,
    LoadedEngine,
    make_app,
    start_cli,
    terminate_cli,
)

from inference_server.app import create_app
from inference_server.config import ServerConfig
from inference_server.engine.pipeline import DiffusersEngine, EngineConfig
from inference_server.tiny_model import save_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def engine(tiny_model_dir) -> DiffusersEngine:
    """Loaded once (Runtime.start would reload it per app, so apps below get a shim)."""
    real = DiffusersEngine(EngineConfig(model_dir=tiny_model_dir, threads=2))
    real.load()
    return real


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


@pytest.fixture(scope="session")
def cli_server(tiny_model_dir, tmp_path_factory) -> Iterator[CliServer]:
    """The real ``t2i-server`` entry point as a subprocess; stderr captured to a file."""
    server = start_cli(tiny_model_dir, tmp_path_factory.mktemp("cli"), ready_timeout=180)
    try:
        yield server
    finally:
        terminate_cli(server)
