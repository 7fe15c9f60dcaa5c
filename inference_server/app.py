"""App factory: one Runtime (config, engine, batcher, store, metrics) per app; thin routes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from inference_server.api import attestation, openai, ops, playground, tutorial
from inference_server.api.errors import ApiError
from inference_server.batcher import Batcher
from inference_server.config import ServerConfig
from inference_server.engine.interface import Engine, ModelLoadError
from inference_server.metrics import Metrics
from inference_server.store import ImageStore

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the routes need. The engine loads in the background; routes never block on it."""

    config: ServerConfig
    engine: Engine
    batcher: Batcher
    store: ImageStore
    metrics: Metrics
    load_error: str | None = None
    # Called with load_error when loading fails: the CLI exits non-zero, so a pod crash-loops
    # with that line as its termination message instead of staying up unready forever.
    on_load_failure: Callable[[str], None] | None = None
    _started: threading.Event = field(default_factory=threading.Event)
    draining: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0  # generation requests admitted and not yet answered
    _in_flight_lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self._in_flight_lock:
            self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)

    def leave(self) -> None:
        with self._in_flight_lock:
            self.in_flight -= 1
        self.metrics.in_flight.set(self.in_flight)

    def begin_drain(self) -> None:
        """Readiness fails from now on and no new generation is admitted."""
        self.draining.set()

    def is_started(self) -> bool:
        return self._started.is_set()

    def is_ready(self) -> bool:
        return (
            self.engine.ready.is_set()
            and self.batcher.alive
            and self.load_error is None
            and not self.draining.is_set()
        )

    def start(self, load_in_background: bool = True) -> threading.Thread | None:
        """Start the worker, then load + warm the engine (in a thread so probes answer)."""
        self.batcher.start()
        self._started.set()
        if not load_in_background:
            self._load()
            return None
        thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
        thread.start()
        return thread

    def _load(self) -> None:
        """Any failure leaves the server unready with a one-line reason on /readyz (a traceback
        only in the log, and only for unexpected errors), instead of "loading" forever."""
        try:
            self.engine.load()
        except ModelLoadError as error:
            self.load_error = str(error)
            log.error("model load failed: %s", error)
        except Exception as error:
            self.load_error = f"model load failed: {type(error).__name__}: {error}"
            log.exception("model load failed")
        if self.load_error is not None and self.on_load_failure is not None:
            self.on_load_failure(self.load_error)


def _route_name() -> str:
    """The matched rule; for a 405 the rule the path matched with another method, so a wrong
    method is counted on its route rather than as "unmatched" (an unknown path)."""
    if request.url_rule:
        return request.url_rule.rule
    error = request.routing_exception
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        adapter = current_app.url_map.bind("localhost")
        rule, _ = adapter.match(request.path, method=error.valid_methods[0], return_rule=True)
        return rule.rule
    return "unmatched"


def create_app(config: ServerConfig | None = None, engine: Engine | None = None) -> Flask:
    config = config or ServerConfig()
    if engine is None:
        raise ValueError("create_app needs an engine (see inference_server.cli)")
    metrics = Metrics()
    runtime = Runtime(
        config=config,
        engine=engine,
        batcher=Batcher(engine, config.max_batch, config.max_queue, metrics),
        store=ImageStore(
            config.output_dir,
            config.retention_max_requests,
            config.retention_max_bytes,
            config.retention_max_age_seconds,
        ),
        metrics=metrics,
    )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.extensions["t2i"] = runtime
    for module in (tutorial, openai, ops, attestation):
        app.register_blueprint(module.blueprint)
    if config.ui:
        app.register_blueprint(playground.blueprint)

    def error_body(
        status: int, message: str, field: str | None, code: str, kind: str | None = None
    ):
        if request.path.startswith("/v1/"):
            error = {"message": message, "type": kind or code, "param": field, "code": code}
            return {"error": error}
        return {"status": "error", "message": message, "field": field}

    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        body = error_body(error.status, error.message, error.field, error.code, error.error_type)
        return jsonify(body), error.status, error.headers

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error):
        message = f"request body: larger than {config.max_body_bytes} bytes"
        return jsonify(error_body(413, message, "body", "invalid_request_error")), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        body = error_body(error.code or 500, error.description or error.name, None, "http_error")
        return jsonify(body), error.code

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error on %s", request.path)
        body = error_body(500, "internal error", None, "server_error")
        return jsonify(body), 500

    @app.after_request
    def count(response):
        metrics.requests.labels(_route_name(), str(response.status_code)).inc()
        return response

    return app
