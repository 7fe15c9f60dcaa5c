"""Request validation for both APIs: types, ranges and limits, each error naming its field.

The fields of each API are a declarative table (``SEED_FIELDS``, ``OPENAI_FIELDS``): the
validators below iterate over it, and ``api/openapi.py`` turns the same table into the
OpenAPI document, so the document cannot drift from what the server accepts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inference_server.api.errors import ApiError, field_error
from inference_server.config import SIZES, ServerConfig, served_model_ids
from inference_server.generation import GenerationParams

MAX_PROMPT_CHARS = 4000
MAX_SEED = 2**63 - 1

# A bound or default that is either fixed or read from the running server's config.
Limit = int | Callable[[ServerConfig], int]


def resolve(limit: Limit, config: ServerConfig) -> int:
    return limit(config) if callable(limit) else limit


def _max_images(config: ServerConfig) -> int:
    return config.max_images_per_request


def _max_steps(config: ServerConfig) -> int:
    return config.max_steps


def _default_steps(config: ServerConfig) -> int:
    return config.default_steps


@dataclass(frozen=True)
class StrField:
    """A text field; ``null`` or absent means the default (or "is required")."""

    name: str
    description: str
    required: bool = False
    default: str = ""
    max_length: int = MAX_PROMPT_CHARS

    def parse(self, body: dict, config: ServerConfig) -> str:
        value = body.get(self.name)
        if value is None:
            if self.required:
                raise field_error(self.name, "is required")
            return self.default
        if not isinstance(value, str):
            raise field_error(self.name, f"must be a string, got {type(value).__name__}")
        if self.required and not value.strip():
            raise field_error(self.name, "must not be empty")
        if len(value) > self.max_length:
            raise field_error(self.name, f"must be at most {self.max_length} characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate ("\ud800") the tokenizer cannot take
            raise field_error(
                self.name, f"must be valid Unicode text (unpaired surrogate at index {error.start})"
            ) from None
        return value


@dataclass(frozen=True)
class IntField:
    """An integer in [low, high]; ``null`` or absent means ``default`` (None: chosen later).

    ``aliases`` are other keys read when ``name`` is absent (OpenAI's ``steps``/``step``).
    """

    name: str
    description: str
    default: Limit | None
    low: int
    high: Limit
    aliases: tuple[str, ...] = ()

    def key(self, body: dict) -> str:
        return next((k for k in (self.name, *self.aliases) if k in body), self.name)

    def parse(self, body: dict, config: ServerConfig) -> int | None:
        key = self.key(body)
        value = body.get(key)
        default = None if self.default is None else resolve(self.default, config)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise field_error(key, f"must be an integer, got {type(value).__name__}")
        high = resolve(self.high, config)
        if not self.low <= value <= high:
            raise field_error(key, f"must be between {self.low} and {high}, got {value}")
        return value


@dataclass(frozen=True)
class NumberField:
    """A number in [low, high]; ``null`` or absent means ``default``."""

    name: str
    description: str
    default: float
    low: float
    high: float

    def parse(self, body: dict, config: ServerConfig) -> float:
        value = body.get(self.name)
        if value is None:
            return self.default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise field_error(self.name, f"must be a number, got {type(value).__name__}")
        if not self.low <= value <= self.high:
            raise field_error(self.name, f"must be between {self.low} and {self.high}, got {value}")
        return float(value)


@dataclass(frozen=True)
class EnumField:
    """One of a fixed set of strings; ``null`` or absent means ``default``."""

    name: str
    description: str
    default: str
    choices: tuple[str, ...]

    def parse(self, body: dict, config: ServerConfig) -> str:
        value = body.get(self.name)
        if value is None:
            return self.default
        if not isinstance(value, str) or value not in self.choices:
            raise field_error(self.name, f"must be one of {', '.join(self.choices)}, got {value!r}")
        return value


@dataclass(frozen=True)
class RejectedField:
    """A key refused outright (a likely typo of another API's field name)."""

    name: str
    reason: str

    def parse(self, body: dict, config: ServerConfig) -> None:
        if self.name in body:
            raise field_error(self.name, self.reason)


@dataclass(frozen=True)
class IgnoredField:
    """A key accepted for compatibility and not used (any JSON value)."""

    name: str
    description: str

    def parse(self, body: dict, config: ServerConfig) -> None:
        return None


@dataclass(frozen=True)
class OnlyField:
    """An OpenAI parameter this server supports only with the values in ``allowed`` (compared
    with their JSON type: ``false`` is not ``0``); ``null`` or absent is accepted too, anything
    else is a 400 giving ``reason``."""

    name: str
    description: str
    allowed: tuple[Any, ...]
    reason: str

    def parse(self, body: dict, config: ServerConfig) -> None:
        value = body.get(self.name)
        if value is None or any(type(value) is type(a) and value == a for a in self.allowed):
            return None
        raise field_error(self.name, f"{self.reason}, got {json.dumps(value)[:80]}")


@dataclass(frozen=True)
class ModelField:
    """OpenAI's ``model``: absent/``null`` or one of the served ids (``served_model_ids``); any
    other string is OpenAI's 404 ``model_not_found``."""

    name: str
    description: str

    def parse(self, body: dict, config: ServerConfig) -> str | None:
        value = body.get(self.name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise field_error(self.name, f"must be a string, got {type(value).__name__}")
        ids = served_model_ids(config.model_name, config.model_aliases)
        if value not in ids:
            raise model_not_found(value, ids)
        return value


def model_not_found(value: str, ids: tuple[str, ...]) -> ApiError:
    return ApiError(
        404,
        f"model: the model {value[:200]!r} does not exist; this server serves "
        + ", ".join(repr(i) for i in ids),
        field="model",
        code="model_not_found",
        error_type="invalid_request_error",
    )


Field = (
    StrField | IntField | NumberField | EnumField | RejectedField | IgnoredField | OnlyField
) | ModelField

_PROMPT = StrField("prompt", "Text to render; non-blank, valid Unicode.", required=True)
_NEGATIVE = StrField("negative_prompt", "What to steer away from (weak with guidance 0).")
_SIZE = EnumField("size", "Image size.", "512x512", tuple(SIZES))
_STEPS_HELP = "Denoising steps (default: the server's --default-steps)."
_GUIDANCE = NumberField(
    "guidance_scale", "Classifier-free guidance; SDXL-Turbo is trained without it.", 0.0, 0.0, 20.0
)
_SEED = IntField(
    "seed", "Base seed (random when absent); same seed, same image.", None, 0, MAX_SEED
)
_IMAGES_HELP = "at most --max-queue images in all (a larger request could never be queued)"

# Order matters: fields are checked in table order, so the first bad field is the one named.
SEED_FIELDS: tuple[Field, ...] = (
    _PROMPT,
    IntField("number", f"Images to return; number x batch is {_IMAGES_HELP}.", 1, 1, _max_images),
    IntField("batch", "Images per forward pass (number x batch images in all).", 1, 1, _max_images),
    RejectedField("steps", "unknown field (this API's field is step)"),
    _SIZE,
    IntField("step", _STEPS_HELP, _default_steps, 1, _max_steps),
    _GUIDANCE,
    _NEGATIVE,
    _SEED,
)

OPENAI_FIELDS: tuple[Field, ...] = (
    _PROMPT,
    IntField("n", f"Images to return; {_IMAGES_HELP}.", 1, 1, _max_images),
    _SIZE,
    EnumField("response_format", "How images are returned.", "url", ("url", "b64_json")),
    IntField("steps", _STEPS_HELP + " Alias: step.", _default_steps, 1, _max_steps, ("step",)),
    _GUIDANCE,
    _NEGATIVE,
    _SEED,
    ModelField(
        "model",
        "The served model: its id (GET /v1/models), the id's last path segment, or an alias "
        "from --model-aliases; null or absent = the served model. Anything else: 404 "
        "model_not_found.",
    ),
    OnlyField(
        "stream",
        "Streaming is not supported: false or absent.",
        (False,),
        "must be "
        "false or absent: streaming (partial images as server-sent events) is not "
        "supported",
    ),
    OnlyField(
        "partial_images",
        "Only with stream, which is not supported: 0 or absent.",
        (0,),
        "must be 0 or absent: partial images need stream, which is not supported",
    ),
    OnlyField(
        "output_format",
        "Images are PNG: png or absent.",
        ("png",),
        "must be png or absent: this server returns PNG only",
    ),
    OnlyField(
        "output_compression",
        "Only for jpeg/webp output: absent.",
        (),
        "must be absent: it applies to jpeg and webp, and this server returns PNG",
    ),
    OnlyField(
        "background",
        "Images are opaque: auto, opaque or absent.",
        ("auto", "opaque"),
        "must be auto, opaque or absent: transparent backgrounds are not supported",
    ),
    EnumField(
        "quality",
        "Accepted and ignored (one model, one quality; use steps).",
        "auto",
        ("auto", "standard", "hd", "low", "medium", "high", "xhigh", "max"),
    ),
    EnumField("style", "Accepted and ignored (DALL-E 3 only).", "vivid", ("vivid", "natural")),
    EnumField("moderation", "Accepted and ignored (no moderation).", "auto", ("auto", "low")),
    StrField("user", "Accepted and ignored (end-user id for abuse monitoring)."),
    StrField("safety_identifier", "Accepted and ignored (end-user id for abuse monitoring)."),
)


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


def parse_fields(fields: tuple[Field, ...], body: dict, config: ServerConfig) -> dict[str, Any]:
    """Every field of the table, in order, parsed from ``body`` (unknown keys are ignored)."""
    return {field.name: field.parse(body, config) for field in fields}


def _fits_queue(name: str, images: int, config: ServerConfig) -> None:
    """A request larger than the whole queue would get 429 forever: a 400 says so instead."""
    if images > config.max_queue:
        raise field_error(
            name,
            f"asks for {images} images, more than this server ever queues ({config.max_queue})",
        )


def tutorial_request(body: dict, config: ServerConfig) -> tuple[GenerationParams, str]:
    """The tutorial's ``POST /api/text2image`` body → params and the size label."""
    values = parse_fields(SEED_FIELDS, body, config)
    number, batch = values["number"], values["batch"]
    if number * batch > config.max_images_per_request:
        raise field_error(
            "number",
            f"number x batch must be at most {config.max_images_per_request}, "
            f"got {number} x {batch}",
        )
    _fits_queue("number", number * batch, config)
    width, height = SIZES[values["size"]]
    params = GenerationParams(
        prompt=values["prompt"],
        number=number,
        batch=batch,
        width=width,
        height=height,
        steps=values["step"],
        guidance_scale=values["guidance_scale"],
        negative_prompt=values["negative_prompt"],
        seed=values["seed"],
    )
    return params, values["size"]


def openai_request(body: dict, config: ServerConfig) -> tuple[GenerationParams, str, str]:
    """OpenAI ``POST /v1/images/generations`` → params, size label, response_format."""
    values = parse_fields(OPENAI_FIELDS, body, config)
    _fits_queue("n", values["n"], config)
    width, height = SIZES[values["size"]]
    params = GenerationParams(
        prompt=values["prompt"],
        number=values["n"],  # n single-image calls: the batcher merges them up to --max-batch
        batch=1,
        width=width,
        height=height,
        steps=values["steps"],
        guidance_scale=values["guidance_scale"],
        negative_prompt=values["negative_prompt"],
        seed=values["seed"],
    )
    return params, values["size"], values["response_format"]
