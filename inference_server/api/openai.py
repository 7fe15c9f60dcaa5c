"""OpenAI Images API: ``POST /v1/images/generations`` with OpenAI's request and response shape,
and the Models API (``GET /v1/models``, ``GET /v1/models/<id>``) listing the one served model."""

from __future__ import annotations

import base64
import io
import time

from flask import Blueprint, current_app, jsonify, request

from inference_server.api.run_generation import run_generation
from inference_server.api.schema import model_not_found, openai_request, parse_json_body
from inference_server.api.urls import base_url
from inference_server.config import ServerConfig, served_model_ids

blueprint = Blueprint("openai", __name__)
OWNER = "t2i-operator"
_STARTED = int(time.time())  # OpenAI's `created`: here, when this server process started


def model_object(config: ServerConfig) -> dict:
    return {"id": config.model_name, "object": "model", "created": _STARTED, "owned_by": OWNER}


@blueprint.get("/v1/models")
def models():
    """The served model only; its aliases are accepted as `model` but not listed."""
    config = current_app.extensions["t2i"].config
    return jsonify({"object": "list", "data": [model_object(config)]})


@blueprint.get("/v1/models/<path:model>")
def model(model: str):
    """By id or alias (ids contain "/": "stabilityai/sdxl-turbo")."""
    config = current_app.extensions["t2i"].config
    ids = served_model_ids(config.model_name, config.model_aliases)
    if model not in ids:
        raise model_not_found(model, ids)
    return jsonify(model_object(config))


def _b64_png(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@blueprint.post("/v1/images/generations")
def generations():
    runtime = current_app.extensions["t2i"]
    params, size, response_format = openai_request(
        parse_json_body(request.get_data()), runtime.config
    )
    result = run_generation(runtime, params, size)
    base = base_url(
        request.environ, runtime.config.public_base_url, runtime.config.trust_forwarded_headers
    )
    data = [
        {"b64_json": _b64_png(image.image)}
        if response_format == "b64_json"
        else {"url": f"{base}/images/{result.request_id}/{image.name}"}
        for image in result.images
    ]
    return jsonify(
        {"created": int(time.time()), "data": data, "output_format": "png", "size": size}
    )
