"""Serving at scale on the local control plane (issue 18 items 1 and 4): the ServiceMonitor
appears when the Prometheus Operator's CRD is installed (detected by a re-check, not only at
start), and not without it; the opt-out prunes it; emptyDir image storage with several replicas
is flagged (condition + Warning Event); a missing shared image claim is named in status."""

from __future__ import annotations

from pathlib import Path

import pytest
from operator_harness import condition, t2i, wait_for

pytestmark = pytest.mark.e2e
SM_CRD = Path(__file__).parent / "manifests" / "servicemonitor-crd.yaml"
SM_CRD_NAME = "servicemonitors.monitoring.coreos.com"


def _ready(kubectl, ns: str, name: str) -> dict:
    return kubectl.wait_condition(name, ns, "Ready", status="True", timeout=120)


def _monitor(kubectl, ns: str, name: str) -> dict | None:
    return kubectl.get("servicemonitors.monitoring.coreos.com", name, ns)


def _served(kubectl) -> bool:
    r = kubectl.run("get", "--raw", "/apis/monitoring.coreos.com/v1", check=False)
    return r.returncode == 0 and "servicemonitors" in r.stdout


def test_service_monitor_follows_the_crd_and_the_opt_out(kubectl, ns, operator):
    kubectl.run("delete", "crd", SM_CRD_NAME, "--ignore-not-found", "--wait=true", check=False)
    wait_for(lambda: not _served(kubectl), "the ServiceMonitor API gone", timeout=60)
    try:
        # Without the CRD: Ready, no apply error (and no ServiceMonitor could exist).
        kubectl.apply(t2i("sd", ns))
        cr = _ready(kubectl, ns, "sd")
        assert condition(cr, "Degraded").get("status") != "True", cr["status"]

        # The CRD installed while the operator runs: the re-check renders it.
        kubectl("apply", "-f", str(SM_CRD))
        kubectl("wait", "--for=condition=Established", f"crd/{SM_CRD_NAME}", "--timeout=60s")
        monitor = wait_for(lambda: _monitor(kubectl, ns, "sd"), "the ServiceMonitor", timeout=90)
        assert monitor["metadata"]["ownerReferences"][0]["name"] == "sd"
        service = kubectl.get("service", "sd", ns)
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]

        # A second resource created while the API is served gets one at once.
        kubectl.apply(t2i("other", ns, monitoring={"labels": {"release": "kps"}}))
        other = wait_for(lambda: _monitor(kubectl, ns, "other"), "the second ServiceMonitor")
        assert other["metadata"]["labels"]["release"] == "kps"

        # Opt-out: pruned; opt back in: back.
        kubectl.apply(t2i("sd", ns, monitoring={"serviceMonitor": False}))
        wait_for(lambda: _monitor(kubectl, ns, "sd") is None, "the ServiceMonitor pruned")
        assert _monitor(kubectl, ns, "other") is not None
    finally:
        kubectl.run("delete", "crd", SM_CRD_NAME, "--ignore-not-found", check=False)


def test_empty_dir_with_replicas_is_flagged_and_a_shared_claim_clears_it(kubectl, ns):
    kubectl.apply(t2i("sd", ns, replicas=2))
    cr = kubectl.wait_condition("sd", ns, "ImagesShared", status="False")
    assert condition(cr, "ImagesShared")["reason"] == "EmptyDirWithReplicas"
    assert "spec.imageStorage.type" in condition(cr, "ImagesShared")["message"]
    wait_for(
        lambda: [
            e
            for e in kubectl.items("events", ns)
            if e["involvedObject"]["name"] == "sd"
            and e["type"] == "Warning"
            and e["reason"] == "EmptyDirWithReplicas"
        ],
        "a Warning Event on the CR",
    )

    # A shared claim that does not exist yet: named in status, nothing rolled out to it.
    shared = {"type": "PVC", "pvc": {"claimName": "images"}}
    kubectl.apply(t2i("sd", ns, replicas=2, imageStorage=shared))
    cr = kubectl.wait_condition("sd", ns, "Ready", reason="PVCNotFound")
    assert "spec.imageStorage.pvc.claimName" in condition(cr, "Ready")["message"]
    volumes = kubectl.get("deployment", "sd", ns)["spec"]["template"]["spec"]["volumes"]
    assert {"name": "output-volume", "emptyDir": {}} in volumes  # the old spec still runs

    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "images", "namespace": ns},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )

    def mounted():
        dep = kubectl.get("deployment", "sd", ns)
        vols = dep["spec"]["template"]["spec"]["volumes"]
        return any(v.get("persistentVolumeClaim", {}).get("claimName") == "images" for v in vols)

    wait_for(mounted, "the shared claim mounted", timeout=120)
    cr = kubectl.wait_condition("sd", ns, "ImagesShared", status="True")
    assert condition(cr, "ImagesShared")["reason"] == "SharedClaim"
