"""Names from a spec reach the API only as one escaped path segment (issue 16 item 1), and the
client uses only public parts of the kubernetes package (item 12)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from t2i_operator.kube import path_for, segment

KUBE_PY = Path(__file__).resolve().parents[2] / "operator" / "t2i_operator" / "kube.py"


@pytest.mark.parametrize(
    "name",
    [
        "../../victim/secrets/db-root",
        "..",
        "a/b",
        "a%2Fb",
        "x?watch=true",
        "UPPER",
        "a..b",
        "x" * 254,
    ],
)
def test_names_that_are_not_one_object_name_are_refused(name):
    with pytest.raises(ValueError):
        path_for("v1", "Secret", "attacker", name)
    with pytest.raises(ValueError):
        path_for("v1", "Secret", name, "db-root")


def test_valid_names_are_one_segment():
    assert path_for("v1", "Secret", "attacker", "models-oss-secret") == (
        "/api/v1/namespaces/attacker/secrets/models-oss-secret"
    )
    assert segment("a.b-c") == "a.b-c"


def test_namespace_none_lists_every_namespace_but_never_reads_an_object_without_one():
    assert path_for("v1", "Pod", None) == "/api/v1/pods"
    assert path_for("v1", "Node", None, "tdx-0") == "/api/v1/nodes/tdx-0"
    with pytest.raises(ValueError):
        path_for("v1", "Secret", None, "db-root")
    with pytest.raises(ValueError):
        path_for("v1", "Secret", "")


def test_no_private_or_version_specific_client_api():
    """`ApiClient.param_serialize` exists only from kubernetes 37 while the pin allows >=30."""
    tree = ast.parse(KUBE_PY.read_text())
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not attrs & {"param_serialize", "call_api", "ApiClient", "rest_client"}
