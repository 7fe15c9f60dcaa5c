"""How a refused apply is reported: user-fixable refusals become a status reason, the rest retry."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException
from t2i_operator.reconcile import apply_problem


def api_error(status: int, message: str, reason: str = "") -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"kind": "Status", "message": message, "reason": reason})
    return error


@pytest.mark.parametrize("status", [400, 409, 422])
def test_invalid_child_is_apply_rejected_with_the_api_servers_message(status):
    problem = apply_problem(api_error(status, 'Deployment "x" is invalid: spec.strategy'))
    assert problem.reason == "ApplyRejected" and "spec.strategy" in problem.message


# Bodies as kube-apiserver 1.35 answers a server-side apply it cannot convert (captured on the
# local control plane; tests/e2e/test_operator_hardening.py gets them from the real server).
@pytest.mark.parametrize(
    "message",
    [
        "failed to create typed patch object (default/x; apps/v1, Kind=Deployment): .spec.template"
        '.spec.containers[name="c"].ports[containerPort="abc",protocol="TCP"].containerPort: '
        "expected numeric (int or float), got string",
        "failed to convert new object (default/x; apps/v1, Kind=Deployment) to proper version: "
        "unable to convert unstructured object to apps/v1, Kind=Deployment: quantities must "
        "match the regular expression",
    ],
)
def test_a_500_for_a_value_the_server_cannot_convert_is_a_rejection(message):
    problem = apply_problem(api_error(500, message, "InternalError"))
    assert problem.reason == "ApplyRejected" and problem.message == message


def test_a_404_while_applying_is_an_api_no_longer_served_not_the_cr_going_away():
    """Applying creates what is missing: a 404 means the child's API went (the ServiceMonitor CRD
    deleted mid-pass). Treated as "the CR is gone", the pass ended silently, without status or
    Event and without a retry (seen in CI: the serving e2e test waited for an Event in vain)."""
    problem = apply_problem(api_error(404, "the server could not find the requested resource"))
    assert problem.reason == "ApplyFailed"
    assert "does not serve" in problem.message and "could not find" in problem.message


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (500, "Internal error occurred: failed to allocate a serviceIP: range is full"),
        (403, 'deployments.apps "x" is forbidden: exceeded quota: compute, requested: cpu=8'),
        (503, 'failed calling webhook "policy.example.com": connection refused'),
    ],
)
def test_cluster_refusals_the_user_can_act_on_are_apply_failed(status, message):
    problem = apply_problem(api_error(status, message))
    assert problem.reason == "ApplyFailed" and problem.message == message


@pytest.mark.parametrize(
    ("status", "message", "reason"),
    [
        (403, "unable to create new content in namespace t2i because it is being terminated",
         "NamespaceTerminating"),
        (401, "Unauthorized", "Unauthorized"),
    ],
)  # fmt: skip
def test_going_away_and_auth_errors_are_left_to_the_handler(status, message, reason):
    assert apply_problem(api_error(status, message, reason)) is None
