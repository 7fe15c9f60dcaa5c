"""Autoscaling on → an HPA owns replicas (the operator stops sending them without a reset to 1);
off → the HPA is gone and spec.replicas applies again."""

from __future__ import annotations

import json

import pytest
from operator_harness import condition, t2i, wait_for

pytestmark = pytest.mark.e2e


def deployment_with_managers(kubectl, name: str, ns: str) -> dict:
    """kubectl hides managedFields unless asked."""
    return json.loads(
        kubectl("get", "deployment", name, "-n", ns, "-o", "json", "--show-managed-fields")
    )


def replicas_owners(dep: dict) -> set[str]:
    return {
        m["manager"]
        for m in dep["metadata"].get("managedFields") or []
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    }


def test_autoscaling_on_then_off(kubectl, ns):
    kubectl.apply(t2i("sd", ns, replicas=2))
    wait_for(
        lambda: condition(kubectl.get("t2i", "sd", ns), "Ready").get("status") == "True",
        "Ready",
    )
    # without autoscaling the operator's apply owns spec.replicas (what must change below)
    assert "t2i-operator" in replicas_owners(deployment_with_managers(kubectl, "sd", ns))
    auto = {"enabled": True, "minReplicas": 1, "maxReplicas": 4}
    kubectl.apply(t2i("sd", ns, replicas=2, autoscaling=auto))
    hpa = wait_for(lambda: kubectl.get("hpa", "sd", ns), "the HPA")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "sd"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "Text2ImageService"
    dep = wait_for(
        lambda: (
            (d := deployment_with_managers(kubectl, "sd", ns))
            and "t2i-operator" not in replicas_owners(d)
            and d
        ),
        "the operator to stop owning spec.replicas",
    )
    # handed over, not dropped: no reset to the default of 1 on the way
    assert dep["spec"]["replicas"] == 2
    # the HPA (here: a human standing in for it) can change replicas and the operator leaves it
    kubectl("scale", "deployment/sd", "-n", ns, "--replicas=3")
    kubectl.apply(t2i("sd", ns, replicas=2, autoscaling=auto, server={"steps": 2}))
    wait_for(
        lambda: (
            "--default-steps"
            in (d := kubectl.get("deployment", "sd", ns))["spec"]["template"]["spec"]["containers"][
                0
            ]["args"]
            and d["spec"]["template"]["spec"]["containers"][0]["args"][
                d["spec"]["template"]["spec"]["containers"][0]["args"].index("--default-steps") + 1
            ]
            == "2"
        ),
        "the new args applied",
    )
    assert kubectl.get("deployment", "sd", ns)["spec"]["replicas"] == 3

    kubectl.apply(t2i("sd", ns, replicas=2, autoscaling={"enabled": False}))
    wait_for(lambda: kubectl.get("hpa", "sd", ns) is None, "the HPA deleted")
    wait_for(
        lambda: kubectl.get("deployment", "sd", ns)["spec"]["replicas"] == 2,
        "spec.replicas applied again",
    )
