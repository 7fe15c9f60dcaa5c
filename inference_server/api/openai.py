"""OpenAI Images API: ``POST /v1/images/generations`` with OpenAI's request and response shape."""

from __future__ import annotations

import base64
import io
import time

from flask import Blueprint, current_app, jsonify, request

from inference_server.api.run_generation import run_generation
from inference_server.api.schema import openai_request, parse_json_body
from inference_server.api.urls import base_url

blueprint = Blueprint("openai", __name__)


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
