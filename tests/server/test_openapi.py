"""The OpenAPI document (built from the validation tables) is valid, complete and true to the
validators; a hypothesis fuzzer shows the validators only ever answer params or a 400 naming a
field. Pure and fast: no engine, no HTTP except the served-route test on a fake engine."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_testlib import FakeEngine

from inference_server.api.errors import ApiError
from inference_server.api.openapi import document, request_schema
from inference_server.api.schema import (
    OPENAI_FIELDS,
    SEED_FIELDS,
    EnumField,
    IntField,
    NumberField,
    RejectedField,
    StrField,
    openai_request,
    tutorial_request,
)
from inference_server.config import ServerConfig

# Not the defaults, so a bound copied from ServerConfig() instead of the running config shows.
CONFIG = ServerConfig(default_steps=2, max_steps=7, max_images_per_request=3, max_queue=20)
APIS = [
    ("/api/text2image", SEED_FIELDS, tutorial_request),
    ("/v1/images/generations", OPENAI_FIELDS, openai_request),
]


def _body_schema(doc: dict, path: str) -> dict:
    return doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def test_document_is_valid_openapi():
    doc = document(CONFIG)
    schemathesis.openapi.from_dict(copy.deepcopy(doc)).validate()
    broken = copy.deepcopy(doc)
    del broken["paths"]["/healthz"]["get"]["responses"]["200"]["description"]  # required
    with pytest.raises(Exception, match="description"):
        schemathesis.openapi.from_dict(broken).validate()
    for path, _, _ in APIS:
        jsonschema.Draft202012Validator.check_schema(_body_schema(doc, path))
    assert json.loads(json.dumps(doc)) == doc  # plain JSON, as served


@pytest.mark.parametrize(("path", "fields", "_validate"), APIS)
def test_every_table_field_appears_with_its_bounds(path, fields, _validate):
    schema = _body_schema(document(CONFIG), path)
    properties = schema["properties"]
    for field in fields:
        prop = properties[field.name]
        if isinstance(field, IntField):
            for name in (field.name, *field.aliases):
                assert properties[name]["minimum"] == field.low
                high = field.high(CONFIG) if callable(field.high) else field.high
                assert properties[name]["maximum"] == high
        elif isinstance(field, NumberField):
            assert (prop["minimum"], prop["maximum"]) == (field.low, field.high)
        elif isinstance(field, EnumField):
            assert set(prop["enum"]) - {None} == set(field.choices)
        elif isinstance(field, StrField):
            assert prop["maxLength"] == field.max_length
            assert (field.name in schema["required"]) == field.required
        elif isinstance(field, RejectedField):
            assert prop["not"] == {}
    assert schema["additionalProperties"] is True  # the server ignores unknown keys
    steps = "step" if path == "/api/text2image" else "steps"
    assert (properties[steps]["maximum"], properties[steps]["default"]) == (7, 2)
    assert properties["n" if steps == "steps" else "number"]["maximum"] == 3


def test_served_document_is_the_running_configs(app_factory):
    app = app_factory(FakeEngine(), start=False, max_steps=9, max_images_per_request=5)
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == document(app.extensions["t2i"].config)
    body = _body_schema(response.get_json(), "/api/text2image")
    assert body["properties"]["step"]["maximum"] == 9


def _names(fields) -> list[str]:
    return [n for f in fields for n in (f.name, *getattr(f, "aliases", ()))]


_KEYS = st.sampled_from(sorted({*_names(SEED_FIELDS), *_names(OPENAI_FIELDS), "step"})) | st.text(
    max_size=8
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 60)
    | st.integers()
    | st.floats()
    | st.sampled_from(["512x512", "1024x1024", "url", "b64_json", " ", "x\ud800", "a" * 4001])
    | st.text(max_size=20)
)
_JSON = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner)
)
# Arbitrary objects; a valid body with a few keys overridden; and one with exactly one table
# field set to an arbitrary scalar (so the accepted path and each single-field refusal are
# reached often, not only "prompt is required").
_FIELD_NAMES = st.sampled_from(sorted({*_names(SEED_FIELDS), *_names(OPENAI_FIELDS)}))
_BODIES = (
    st.dictionaries(_KEYS, _JSON, max_size=8)
    | st.dictionaries(_KEYS, _JSON, max_size=3).map(lambda extra: {"prompt": "a cat", **extra})
    | st.tuples(_FIELD_NAMES, _SCALARS).map(lambda kv: {"prompt": "a cat", kv[0]: kv[1]})
)


@pytest.mark.parametrize(("path", "fields", "validate"), APIS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_BODIES)
def test_fuzzed_bodies_give_params_or_a_400_naming_a_field(path, fields, validate, body):
    """Never another exception; anything accepted is valid by the published schema."""
    try:
        validate(body, CONFIG)
    except ApiError as error:
        if error.status == 404:  # OpenAI's answer to a model this server does not serve
            assert (error.field, error.code) == ("model", "model_not_found")
            assert path == "/v1/images/generations" and isinstance(body["model"], str)
            return
        assert error.status == 400
        assert error.field in _names(fields)
        assert error.message.startswith(f"{error.field}: ")
        return
    jsonschema.validate(body, request_schema(fields, CONFIG), jsonschema.Draft202012Validator)


_OPERATIONS = {
    path: schemathesis.openapi.from_dict(document(CONFIG))[path]["POST"] for path, *_ in APIS
}


@pytest.mark.parametrize(("path", "fields", "validate"), APIS)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_bodies_valid_by_the_schema_are_accepted(path, fields, validate, data):
    """The converse: the document promises nothing the validator refuses, except what it
    states in words: number x batch, and integers written as integer literals."""
    body = data.draw(_OPERATIONS[path].as_strategy()).body
    try:
        validate(body, CONFIG)
    except ApiError as error:
        if isinstance(body.get(error.field), float) and "integer" in error.message:
            return  # JSON Schema's integer includes 2.0; the server wants a literal (documented)
        images = (body.get("number") or 1) * (body.get("batch") or 1)
        assert error.field == "number" and images > CONFIG.max_images_per_request, error.message


def test_the_committed_copy_in_docs_is_the_generated_document():
    """docs/openapi.json is the rendering for the default settings, regenerated by
    `python -m inference_server.api.openapi > docs/openapi.json`, never edited by hand."""
    path = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
    committed = json.loads(path.read_text())
    generated = json.loads(json.dumps(document(ServerConfig())))
    # The version is the installed package's ("unknown" from a source checkout): not compared.
    committed["info"].pop("version")
    generated["info"].pop("version")
    assert committed == generated
