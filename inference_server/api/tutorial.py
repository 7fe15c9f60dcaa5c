"""The tutorial's API: ``POST /api/text2image`` and ``GET /images/<id>/<i>_<j>.png``."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, request, send_file

from inference_server.api.run_generation import run_generation
from inference_server.api.schema import parse_json_body, tutorial_request
from inference_server.api.urls import base_url

blueprint = Blueprint("tutorial", __name__)


@blueprint.post("/api/text2image")
def text2image():
    runtime = current_app.extensions["t2i"]
    params, size = tutorial_request(parse_json_body(request.get_data()), runtime.config)
    result = run_generation(runtime, params, size)
    base = base_url(
        request.environ, runtime.config.public_base_url, runtime.config.trust_forwarded_headers
    )
    count = len(result.images)
    return jsonify(
        {
            "averageImageGenerationTimeSeconds": result.seconds / max(1, params.number),
            "generationTimeSeconds": result.seconds,
            "id": result.request_id,
            "meta": {
                "input": {
                    "batch": params.batch,
                    "model": runtime.config.model_name,
                    "number": params.number,
                    "prompt": params.prompt,
                    "size": size,
                    "step": params.steps,
                    "seed": result.seed,
                    "negative_prompt": params.negative_prompt,
                    "guidance_scale": params.guidance_scale,
                }
            },
            "output": [
                {
                    "latencySeconds": image.latency_seconds,
                    "url": f"{base}/images/{result.request_id}/{image.name}",
                }
                for image in result.images
            ],
            "status": "success" if count else "error",
        }
    )


@blueprint.get("/images/<request_id>/<name>")
def image(request_id: str, name: str):
    path = current_app.extensions["t2i"].store.resolve(request_id, name)
    if path is None:
        abort(404)
    try:
        return send_file(path, mimetype="image/png", max_age=3600)
    except FileNotFoundError:  # removed since resolve() by a retention pass (any replica's)
        abort(404)
