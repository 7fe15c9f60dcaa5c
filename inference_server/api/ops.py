"""Operations routes. Health never waits on the engine; readiness tracks the loaded, warm model
and a live worker thread."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from inference_server.api.openapi import document
from inference_server.api.status import machine_cpu, server_status

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz")
def healthz():
    runtime = current_app.extensions["t2i"]
    if runtime.load_error is None and not runtime.batcher.alive and runtime.is_started():
        return jsonify({"status": "error", "message": "generation worker died"}), 500
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz():
    runtime = current_app.extensions["t2i"]
    if runtime.is_ready():
        return jsonify({"status": "ready", "model": runtime.config.model_name})
    if runtime.draining.is_set():
        message = "shutting down"
    else:
        message = runtime.load_error or "model is loading"
    return jsonify({"status": "not ready", "message": message}), 503, {"Retry-After": "10"}


@blueprint.get("/metrics")
def metrics():
    runtime = current_app.extensions["t2i"]
    runtime.metrics.ready.set(1 if runtime.is_ready() else 0)
    runtime.metrics.queue_depth.set(runtime.batcher.depth)
    return Response(generate_latest(runtime.metrics.registry), mimetype=CONTENT_TYPE_LATEST)


@blueprint.get("/api/status")
def status():
    runtime = current_app.extensions["t2i"]
    description = getattr(runtime.engine, "description", {})
    return jsonify(
        server_status(
            runtime.config, description, runtime.is_ready(), runtime.batcher.depth, machine_cpu()
        )
    )


@blueprint.get("/openapi.json")
def openapi():
    return jsonify(document(current_app.extensions["t2i"].config))
