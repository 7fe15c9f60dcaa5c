"""Every spec the CRD's own schema accepts ends in manifests or a named problem, never a traceback.

Specs are generated from the stored openAPIV3Schema (schema_strategy.py: hypothesis-jsonschema
0.23 does not run on the pinned Hypothesis; CEL rules are not modelled, so this is a superset of
what the API server accepts — all the better), then run through the same pure steps a reconcile
pass uses: check → render → status.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from schema_strategy import strategy
from t2i_operator import reconcile
from t2i_operator.render import Credentials, Owner
from t2i_operator.status import compute_status

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "t2i.dev_text2imageservices.yaml").read_text())
OWNER = Owner(name="fuzz", namespace="tenant", uid="uid-1")
CREDENTIALS = Credentials("id", "secret")


SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def run_pass(raw: dict[str, Any]) -> tuple[list[dict[str, Any]], reconcile.Problem | None, dict]:
    """The pure part of one reconcile pass (the API calls are the e2e tests' business)."""
    spec, problem = reconcile.checked_spec(raw)
    desired: list[dict[str, Any]] = []
    if spec is not None:
        desired, problem = reconcile.render_checked(spec, OWNER, CREDENTIALS)
    status = compute_status(
        spec=spec,
        owner=OWNER,
        generation=2,
        deployment=None,
        pods=[],
        hpa=None,
        problem=problem,
        previous={},
        now="2026-12-02T00:00:00Z",
    )
    return desired, problem, status


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(strategy(SPEC_SCHEMA))
def test_generated_specs_render_or_name_the_field(raw):
    desired, problem, status = run_pass(raw)
    json.dumps(desired)  # manifests are plain JSON
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] and ready["message"]
    if problem is None:
        kinds = [o["kind"] for o in desired]
        assert "Deployment" in kinds and "Service" in kinds
        assert status["observedGeneration"] == 2
    else:
        assert problem.reason == "InvalidSpec", problem
        assert "spec." in problem.message, problem
        assert ready["reason"] == "InvalidSpec" and "observedGeneration" not in status


def test_known_crashers_are_named_problems():
    for raw, field in (
        ({"resources": {"limits": {"cpu": "NaN"}}}, "spec.resources.limits.cpu"),
        ({"affinity": {"nodeAffinity": "oops"}}, "spec.affinity.nodeAffinity"),
        ({"tolerations": ["x"]}, "spec.tolerations[0]"),
    ):
        desired, problem, _ = run_pass(raw)
        assert desired == [] and problem is not None and field in problem.message, (raw, problem)
