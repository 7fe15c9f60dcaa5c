"""schemathesis against the live ``t2i-server`` on the tiny pipeline, driven by the document the
server itself serves: no 5xx (but the documented 501 outside a TD), and every status, content
type, header and body as documented.

Bounded: generation requests are narrowed (in the test, not the server) to at most 2 images of
2 steps at 512x512 so a run stays within a minute or two; the validation paths beyond those
bounds are fuzzed in-process by test_openapi.py.
"""

from __future__ import annotations

import copy

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CHEAP = {"number": 2, "n": 2, "batch": 1, "step": 2, "steps": 2}
GENERATION = ("/api/text2image", "/v1/images/generations")
# The only 5xx expected here: attestation outside a TD (documented, never a fake quote).
# 500s, also the documented "engine failed" one, and 502/504 fail the run.
ALLOWED_5XX = {"/v1/attestation": {501}}


def cheap_generation(doc: dict) -> dict:
    """The served document with generation bounded to small, 512x512 requests."""
    doc = copy.deepcopy(doc)
    for path in GENERATION:
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        properties = body["schema"]["properties"]
        for name, high in CHEAP.items():
            if name in properties:
                properties[name]["maximum"] = high
        properties["size"]["enum"] = ["512x512", None]
    return doc


def examples_for(path: str) -> int:
    return 25 if path in GENERATION else 8


@pytest.fixture(scope="module")
def live_schema(cli_server):
    response = requests.get(f"{cli_server.base}/openapi.json", timeout=30)
    assert response.status_code == 200
    schema = schemathesis.openapi.from_dict(cheap_generation(response.json()))
    schema.validate()
    return schema


def test_the_live_server_conforms_to_its_document(cli_server, live_schema):
    operations = [result.ok() for result in live_schema.get_all_operations()]
    assert {op.path for op in operations} >= {*GENERATION, "/healthz", "/openapi.json"}
    session = requests.Session()
    seen: dict[str, set[int]] = {}
    for operation in operations:
        fuzz(operation, cli_server.base, session, seen.setdefault(operation.path, set()))
    # The run exercised the generation paths for real, not only their refusals.
    assert all(200 in seen[path] for path in GENERATION), seen


def fuzz(operation, base_url: str, session: requests.Session, statuses: set[int]) -> None:
    """A bounded hypothesis run of one operation against the live server."""

    @settings(
        max_examples=examples_for(operation.path),
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case):
        response = case.call_and_validate(
            base_url=base_url, session=session, checks=CHECKS, timeout=120
        )
        statuses.add(response.status_code)
        assert response.status_code < 500 or response.status_code in ALLOWED_5XX.get(
            operation.path, set()
        ), f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"

    run()
