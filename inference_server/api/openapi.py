"""The OpenAPI 3.1 document of the server, built from the validation tables in ``schema.py``
and the running config, so the request schemas are never a second, hand-written copy.

Pure: ``document(config)`` is a dict; the route in ``ops.py`` only serializes it.
"""

from __future__ import annotations

import json
from typing import Any

from inference_server.api.schema import (
    OPENAI_FIELDS,
    SEED_FIELDS,
    EnumField,
    Field,
    IgnoredField,
    IntField,
    ModelField,
    NumberField,
    OnlyField,
    RejectedField,
    StrField,
    resolve,
)
from inference_server.attestation.service import server_version
from inference_server.config import ServerConfig, served_model_ids

JSON = "application/json"
Schema = dict[str, Any]

# "Not blank" as str.strip() sees it, spelled out: regex engines disagree on what \s is
# (ECMA's omits U+001C..U+001F and U+0085, and adds U+FEFF). All isspace() chars are < U+3001.
NON_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x3001)) if c.isspace()) + "]"


def field_schemas(field: Field, config: ServerConfig) -> dict[str, Schema]:
    """Property schemas for one table field (one per accepted key). ``null`` is accepted
    wherever the server treats it as "absent", except for required fields."""
    if isinstance(field, RejectedField):
        return {field.name: {"not": {}, "description": f"Refused: {field.reason}."}}
    if isinstance(field, IgnoredField):
        return {field.name: {"description": field.description}}
    if isinstance(field, OnlyField):
        return {field.name: {"enum": [*field.allowed, None], "description": field.description}}
    if isinstance(field, ModelField):
        ids = served_model_ids(config.model_name, config.model_aliases)
        return {field.name: {"enum": [*ids, None], "description": field.description}}
    if isinstance(field, StrField):
        schema: Schema = {"type": "string", "maxLength": field.max_length}
        if field.required:
            schema.update(minLength=1, pattern=NON_BLANK)
        else:
            schema.update(type=["string", "null"], default=field.default)
    elif isinstance(field, IntField):
        schema = {
            "type": ["integer", "null"],
            "minimum": field.low,
            "maximum": resolve(field.high, config),
        }
        if field.default is not None:
            schema["default"] = resolve(field.default, config)
    elif isinstance(field, NumberField):
        schema = {
            "type": ["number", "null"],
            "minimum": field.low,
            "maximum": field.high,
            "default": field.default,
        }
    else:
        assert isinstance(field, EnumField)
        schema = {"enum": [*field.choices, None], "default": field.default}
    schema["description"] = field.description
    if isinstance(field, IntField):  # JSON Schema's "integer" would also admit 2.0
        schema["description"] += " An integer literal: 2.0 is refused."
    names = (field.name, *field.aliases) if isinstance(field, IntField) else (field.name,)
    return {name: dict(schema) for name in names}


def request_schema(fields: tuple[Field, ...], config: ServerConfig) -> Schema:
    """Unknown keys are ignored by the server, hence ``additionalProperties: true``."""
    properties: dict[str, Schema] = {}
    for field in fields:
        properties.update(field_schemas(field, config))
    required = [f.name for f in fields if isinstance(f, StrField) and f.required]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": True,
    }


_SEED_ERROR: Schema = {
    "type": "object",
    "properties": {
        "status": {"const": "error"},
        "message": {"type": "string"},
        "field": {"type": ["string", "null"]},
    },
    "required": ["status", "message", "field"],
}
_OPENAI_ERROR: Schema = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": "string"},
            },
            "required": ["message", "type", "param", "code"],
        }
    },
    "required": ["error"],
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}
_ERRORS = {
    "400": "Invalid request; the message and field name the offending field.",
    "404": "OpenAI API: unknown model (code model_not_found; GET /v1/models lists it).",
    "413": "Request body larger than --max-body-bytes.",
    "429": "Queue full (or attestation rate limit); retry after Retry-After.",
    "500": "The engine failed on this request (other requests are unaffected).",
    "501": "Attestation: not running in a TD.",
    "503": "Model not loaded yet, or the server is draining; retry after Retry-After.",
    "504": "The images were not ready within --request-timeout.",
}


def _json(schema: Schema, description: str, headers: dict | None = None) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _errors(envelope: Schema, statuses: tuple[str, ...]) -> dict[str, Schema]:
    return {
        status: _json(envelope, _ERRORS[status], _RETRY_AFTER if status in ("429", "503") else None)
        for status in statuses
    }


def _object(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return {"type": "object", "properties": properties, "required": required or list(properties)}


_NUMBER = {"type": "number"}
_STRING = {"type": "string"}
_GENERATION_ERRORS = ("400", "413", "429", "500", "503", "504")
_OPENAI_GENERATION_ERRORS = ("400", "404", "413", "429", "500", "503", "504")
_MODEL = _object(
    {
        "id": _STRING,
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": _STRING,
    }
)

_SEED_RESPONSE = _object(
    {
        "status": {"enum": ["success", "error"]},
        "id": _STRING,
        "generationTimeSeconds": _NUMBER,
        "averageImageGenerationTimeSeconds": _NUMBER,
        "meta": _object({"input": {"type": "object"}}),
        "output": {
            "type": "array",
            "items": _object({"url": _STRING, "latencySeconds": _NUMBER}),
        },
    }
)
_OPENAI_RESPONSE = _object(
    {
        "created": {"type": "integer"},
        "data": {
            "type": "array",
            "items": {
                "oneOf": [_object({"url": _STRING}), _object({"b64_json": _STRING})],
            },
        },
        "output_format": {"const": "png"},
        "size": _STRING,
    }
)


def _generation(
    summary: str,
    fields: tuple[Field, ...],
    ok: Schema,
    error: Schema,
    config,
    errors: tuple[str, ...] = _GENERATION_ERRORS,
):
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": request_schema(fields, config)}},
            },
            "responses": {
                "200": _json(ok, "The generated images."),
                **_errors(error, errors),
            },
        }
    }


def _get(summary: str, responses: dict[str, Schema]) -> Schema:
    return {"get": {"summary": summary, "responses": responses}}


def _ops_paths() -> dict[str, Schema]:
    health = _object({"status": _STRING})
    not_ready = _object({"status": _STRING, "message": _STRING})
    return {
        "/healthz": _get(
            "Liveness: the process answers (never waits on the model).",
            {
                "200": _json(health, "Alive."),
                "500": _json(not_ready, "The generation worker died."),
            },
        ),
        "/readyz": _get(
            "Readiness: model loaded and warmed, worker alive, not draining.",
            {
                "200": _json(_object({"status": _STRING, "model": _STRING}), "Ready."),
                "503": _json(not_ready, "Loading, failed to load, or draining.", _RETRY_AFTER),
            },
        ),
        "/metrics": _get(
            "Prometheus metrics.",
            {"200": {"description": "Text exposition format.", "content": {"text/plain": {}}}},
        ),
        "/api/status": _get(
            "Model, backend, CPU/ISA, queue depth and request limits.",
            {
                "200": _json(
                    _object(
                        {
                            "model": _STRING,
                            "ready": {"type": "boolean"},
                            "queue": {"type": "object"},
                            "limits": {"type": "object"},
                        }
                    ),
                    "Server status.",
                )
            },
        ),
        "/openapi.json": _get(
            "This document.", {"200": _json({"type": "object"}, "OpenAPI 3.1 document.")}
        ),
    }


def _image_path() -> Schema:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _STRING}
        for name in ("request_id", "name")
    ]
    operation = _get(
        "A generated image (the URLs in generation responses).",
        {
            "200": {"description": "The PNG.", "content": {"image/png": {}}},
            "404": _json(_SEED_ERROR, "No such image (or expired, or outside the store)."),
        },
    )
    operation["get"]["parameters"] = parameters
    return operation


def _models_paths() -> dict[str, Schema]:
    listing = _object({"object": {"const": "list"}, "data": {"type": "array", "items": _MODEL}})
    one = _get(
        "OpenAI: the served model by its id or an accepted alias.",
        {
            "200": _json(_MODEL, "The model (its id is always the served id)."),
            "404": _json(_OPENAI_ERROR, _ERRORS["404"]),
        },
    )
    one["get"]["parameters"] = [
        {"name": "model", "in": "path", "required": True, "schema": _STRING}
    ]
    return {
        "/v1/models": _get("OpenAI: the served model.", {"200": _json(listing, "The list.")}),
        "/v1/models/{model}": one,
    }


def _attestation_path() -> Schema:
    nonce = {"type": "string", "pattern": "^([0-9a-fA-F]{2}){16,64}$", "description": "hex"}
    evidence = _object(
        {
            "layout": _STRING,
            "nonce": _STRING,
            "provider": _STRING,
            "quote": _STRING,
            "report_data": _STRING,
            "measurements": {"type": "object"},
            "created": {"type": "integer"},
        }
    )
    return {
        "post": {
            "summary": "TD evidence (a TDX quote) bound to the client's nonce.",
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _object({"nonce": nonce})}},
            },
            "responses": {
                "200": _json(evidence, "The evidence."),
                **_errors(_OPENAI_ERROR, ("400", "413", "429", "501", "503")),
            },
        }
    }


def document(config: ServerConfig) -> Schema:
    """The whole document for ``config`` (limits such as --max-steps come from it)."""
    paths = {
        "/api/text2image": _generation(
            "The tutorial's text-to-image API.", SEED_FIELDS, _SEED_RESPONSE, _SEED_ERROR, config
        ),
        "/v1/images/generations": _generation(
            "OpenAI Images API.",
            OPENAI_FIELDS,
            _OPENAI_RESPONSE,
            _OPENAI_ERROR,
            config,
            _OPENAI_GENERATION_ERRORS,
        ),
        **_models_paths(),
        "/images/{request_id}/{name}": _image_path(),
        "/v1/attestation": _attestation_path(),
        **_ops_paths(),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "t2i inference server", "version": server_version()},
        "paths": paths,
    }


def main() -> None:
    """``python -m inference_server.api.openapi``: the document for the default settings, as
    committed in docs/openapi.json (a test keeps that copy equal to this output)."""
    print(json.dumps(document(ServerConfig()), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
