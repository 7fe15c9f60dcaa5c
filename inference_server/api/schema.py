"""Request validation for both APIs: types, ranges and limits, each error naming its field."""

from __future__ import annotations

import json
from typing import Any

from inference_server.api.errors import ApiError, field_error
from inference_server.config import SIZES, ServerConfig
from inference_server.generation import GenerationParams

MAX_PROMPT_CHARS = 4000
MAX_SEED = 2**63 - 1


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Parse the body as JSON whatever the Content-Type: the tutorial's ``curl -d`` sends it
    as application/x-www-form-urlencoded."""
    if not raw:
        raise ApiError(400, "request body: expected a JSON object", field="body")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"request body: malformed JSON ({error})", field="body") from None
    except RecursionError:  # "[[[[..." nested deeper than the parser's stack allows
        raise ApiError(400, "request body: JSON nested too deeply", field="body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body: expected a JSON object", field="body")
    return body


def _int(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise field_error(name, f"must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise field_error(name, f"must be between {low} and {high}, got {value}")
    return value


def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise field_error(name, f"must be a number, got {type(value).__name__}")
    if not low <= value <= high:
        raise field_error(name, f"must be between {low} and {high}, got {value}")
    return float(value)


def _str(body: dict, name: str, required: bool = False, default: str = "") -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise field_error(name, "is required")
        return default
    if not isinstance(value, str):
        raise field_error(name, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise field_error(name, "must not be empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise field_error(name, f"must be at most {MAX_PROMPT_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate ("\ud800") the tokenizer cannot take
        raise field_error(
            name, f"must be valid Unicode text (unpaired surrogate at index {error.start})"
        ) from None
    return value


def _size(body: dict, name: str) -> tuple[str, int, int]:
    value = body.get(name)
    if value is None:
        value = "512x512"
    if not isinstance(value, str) or value not in SIZES:
        raise field_error(name, f"must be one of {', '.join(SIZES)}, got {value!r}")
    return (value, *SIZES[value])


def _seed(body: dict) -> int | None:
    if body.get("seed") is None:
        return None
    return _int(body, "seed", 0, 0, MAX_SEED)


def _fits_queue(name: str, images: int, config: ServerConfig) -> None:
    """A request larger than the whole queue would get 429 forever: a 400 says so instead."""
    if images > config.max_queue:
        raise field_error(
            name,
            f"asks for {images} images, more than this server ever queues ({config.max_queue})",
        )


def seed_request(body: dict, config: ServerConfig) -> tuple[GenerationParams, str]:
    """The tutorial's ``POST /api/text2image`` body → params and the size label."""
    prompt = _str(body, "prompt", required=True)
    number = _int(body, "number", 1, 1, config.max_images_per_request)
    batch = _int(body, "batch", 1, 1, config.max_images_per_request)
    if number * batch > config.max_images_per_request:
        raise field_error(
            "number",
            f"number x batch must be at most {config.max_images_per_request}, "
            f"got {number} x {batch}",
        )
    _fits_queue("number", number * batch, config)
    if "steps" in body:
        raise field_error("steps", "unknown field (this API's field is step)")
    size, width, height = _size(body, "size")
    params = GenerationParams(
        prompt=prompt,
        number=number,
        batch=batch,
        width=width,
        height=height,
        steps=_int(body, "step", config.default_steps, 1, config.max_steps),
        guidance_scale=_number(body, "guidance_scale", 0.0, 0.0, 20.0),
        negative_prompt=_str(body, "negative_prompt"),
        seed=_seed(body),
    )
    return params, size


def openai_request(body: dict, config: ServerConfig) -> tuple[GenerationParams, str, str]:
    """OpenAI ``POST /v1/images/generations`` → params, size label, response_format."""
    prompt = _str(body, "prompt", required=True)
    n = _int(body, "n", 1, 1, config.max_images_per_request)
    _fits_queue("n", n, config)
    size, width, height = _size(body, "size")
    response_format = body.get("response_format")
    if response_format is None:
        response_format = "url"
    if not isinstance(response_format, str) or response_format not in ("url", "b64_json"):
        raise field_error("response_format", f"must be url or b64_json, got {response_format!r}")
    steps_field = "steps" if "steps" in body else "step"
    params = GenerationParams(
        prompt=prompt,
        number=n,  # n single-image calls: the batcher merges them up to --max-batch
        batch=1,
        width=width,
        height=height,
        steps=_int(body, steps_field, config.default_steps, 1, config.max_steps),
        guidance_scale=_number(body, "guidance_scale", 0.0, 0.0, 20.0),
        negative_prompt=_str(body, "negative_prompt"),
        seed=_seed(body),
    )
    return params, size, response_format
