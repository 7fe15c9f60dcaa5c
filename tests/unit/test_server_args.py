"""What the operator renders and what the server accepts are one contract: the backend names
agree, and every rendered server container's args parse with the server's own CLI parser, each
flag's value arriving unchanged.

The operator image carries no inference_server (and no torch), so spec.BACKENDS is a copy of
the server's list; this test is what ties the two (and the CRD's enum, test_crd_and_install)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from schema_strategy import strategy
from t2i_operator import reconcile
from t2i_operator import spec as spec_mod
from t2i_operator.render import render_all
from tutorial import (
    CREDENTIALS,
    DEFAULT_VALUES,
    OSS_SPEC,
    OWNER,
    TDX_SPEC,
    TDX_VALUES_LITERAL,
    load,
)

from inference_server import cli
from inference_server.api.urls import valid_public_base_url
from inference_server.engine.interface import BACKENDS as SERVER_BACKENDS

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "t2i.dev_text2imageservices.yaml").read_text())
SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
TUTORIAL = {
    "default": DEFAULT_VALUES,
    "oss": OSS_SPEC,
    "tdx": TDX_SPEC,
    "tdx-literal": TDX_VALUES_LITERAL,
    "server-settings": "server: {steps: 2, maxBatch: 8, backend: compile, threads: 3, ui: false,"
    " publicBaseURL: 'https://t2i.example.com/base'}",
}


def test_the_operator_and_the_server_list_the_same_backends():
    assert spec_mod.BACKENDS == SERVER_BACKENDS


def server_containers(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pods = [m["spec"]["template"]["spec"] for m in manifests if m["kind"] == "Deployment"]
    return [c for pod in pods for c in pod["containers"] if c.get("command") == ["t2i-server"]]


def pairs(args: list[str]) -> list[tuple[str, str]]:
    assert len(args) % 2 == 0 and all(a.startswith("--") for a in args[::2]), args
    return list(zip(args[::2], args[1::2], strict=True))


def arrives_unchanged(namespace: argparse.Namespace, flag: str, text: str) -> bool:
    """The parsed value of ``flag`` is the rendered ``text`` (as a bool, number or string)."""
    value = getattr(namespace, flag[2:].replace("-", "_"))
    if isinstance(value, bool):
        return str(value).lower() == text
    if isinstance(value, int | float):
        return value == float(text)
    if flag == "--public-base-url":
        return value == valid_public_base_url(text)  # the server's one normalisation
    return str(value) == text


def cel_accepts(raw: dict[str, Any]) -> bool:
    """The CRD's CEL rule on server.publicBaseURL (a port in 1..65535), which the schema
    strategy does not model: the API server refuses the rest, so no pod ever gets them."""
    url = ((raw or {}).get("server") or {}).get("publicBaseURL")
    if not isinstance(url, str) or not url:
        return True
    try:
        port = urlsplit(url).port
    except ValueError:
        return False
    return port is None or 1 <= port <= 65535


def assert_server_parses(manifests: list[dict[str, Any]], monkeypatch) -> int:
    """Parse each server container's args as the container would (no T2I_* env of ours)."""
    for name in [n for n in os.environ if n.startswith("T2I_")]:
        monkeypatch.delenv(name)
    containers = server_containers(manifests)
    for container in containers:
        namespace = cli.parse_args(container["args"])  # an unknown flag or bad value exits 2
        for flag, value in pairs(container["args"]):
            assert arrives_unchanged(namespace, flag, value), (flag, value)
        assert namespace.backend in SERVER_BACKENDS
    return len(containers)


@pytest.mark.parametrize("name", sorted(TUTORIAL))
def test_tutorial_specs_render_args_the_server_parses(name, monkeypatch):
    manifests = render_all(spec_mod.parse(load(TUTORIAL[name])), OWNER, CREDENTIALS)
    assert assert_server_parses(manifests, monkeypatch) == 1


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_resources_render_args_the_server_parses(path, monkeypatch):
    bodies = [d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "Text2ImageService"]
    assert bodies
    for body in bodies:
        manifests = render_all(spec_mod.parse(body.get("spec") or {}), OWNER, CREDENTIALS)
        assert assert_server_parses(manifests, monkeypatch) == 1


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(raw=strategy(SPEC_SCHEMA))
def test_every_spec_the_crd_accepts_renders_args_the_server_parses(raw, monkeypatch):
    assume(cel_accepts(raw))
    spec, problem = reconcile.checked_spec(raw)
    if spec is None:
        assert problem is not None  # a named problem, no Deployment (see test_spec_fuzz)
        return
    manifests, problem = reconcile.render_checked(spec, OWNER, CREDENTIALS)
    assert assert_server_parses(manifests, monkeypatch) == (0 if problem else 1)
