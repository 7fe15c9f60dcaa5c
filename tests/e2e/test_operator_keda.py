"""spec.autoscaling.mode QueueDepth against the real API server, with and without KEDA's real
CRDs (from its Go module, hack/keda.sh --crds): without them the fixed spec.replicas runs and
status says KEDANotInstalled; once they are installed the operator notices by itself, renders a
ScaledObject the CRD's schema accepts, hands replicas over without a reset, and never writes them
again; KEDA scaling to zero is stated in status and `kubectl get t2i`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from operator_harness import condition, t2i, wait_for
from test_operator_autoscaling import replicas_owners

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PROM = "http://prometheus.monitoring.svc:9090"
QUEUE = {
    "enabled": True,
    "mode": "QueueDepth",
    "minReplicas": 0,
    "maxReplicas": 4,
    "scaleDownStabilizationSeconds": 30,
    "queueDepth": {"prometheusServerAddress": PROM, "targetPerReplica": 2},
    "schedule": {"timezone": "Europe/Berlin", "replicas": 1},
}
KEDA_CRDS = ("scaledobjects.keda.sh",)


@pytest.fixture(scope="module")
def keda_crds() -> Path:
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "keda.sh"), "--crds"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip().splitlines()[-1]) / "crds" / "keda.sh_scaledobjects.yaml"


def deployment(kubectl, ns: str) -> dict:
    """The Deployment WITH managedFields (kubectl hides them unless asked)."""
    return kubectl.json("get", "deployment", "sd", "-n", ns, "--show-managed-fields")


def keda_served(kubectl) -> bool:
    return kubectl.run("get", "--raw", "/apis/keda.sh/v1alpha1", check=False).returncode == 0


def remove_keda(kubectl) -> None:
    kubectl.run("delete", "crd", *KEDA_CRDS, "--ignore-not-found", "--wait=true")
    wait_for(lambda: not keda_served(kubectl), "keda.sh/v1alpha1 no longer served")


def test_queue_depth_waits_for_keda_then_hands_replicas_to_it(kubectl, ns, keda_crds):
    remove_keda(kubectl)
    try:
        kubectl.apply(t2i("sd", ns, replicas=2, autoscaling=QUEUE))
        cr = wait_for(
            lambda: (
                (c := kubectl.get("t2i", "sd", ns))
                and condition(c, "AutoscalerUnavailable").get("reason") == "KEDANotInstalled"
                and condition(c, "Ready").get("status") == "True"
                and c
            ),
            "AutoscalerUnavailable=KEDANotInstalled with the fixed replicas Ready",
        )
        assert cr["status"]["autoscaler"] == "KEDANotInstalled"
        assert "install KEDA" in condition(cr, "AutoscalerUnavailable")["message"]
        dep = deployment(kubectl, ns)
        assert dep["spec"]["replicas"] == 2
        assert "t2i-operator" in replicas_owners(dep)
        assert kubectl.get("hpa", "sd", ns) is None

        # KEDA installed later: the operator's retry notices it without any edit of the CR.
        kubectl("apply", "--server-side", "-f", str(keda_crds))
        so = wait_for(
            lambda: keda_served(kubectl) and kubectl.get("scaledobject", "sd", ns),
            "the ScaledObject (the operator re-checks for KEDA)",
            timeout=180,
        )
        assert so["metadata"]["ownerReferences"][0]["kind"] == "Text2ImageService"
        assert so["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "sd",
        }
        assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (0, 4)
        assert {t["type"] for t in so["spec"]["triggers"]} == {"prometheus", "cron"}
        dep = wait_for(
            lambda: (
                (d := deployment(kubectl, ns)) and "t2i-operator" not in replicas_owners(d) and d
            ),
            "the operator to stop owning spec.replicas",
        )
        assert dep["spec"]["replicas"] == 2  # handed over, no reset to 1 on the way
        wait_for(
            lambda: (
                condition(kubectl.get("t2i", "sd", ns), "AutoscalerUnavailable").get("status")
                == "False"
            ),
            "AutoscalerUnavailable=False",
        )

        # KEDA (here: a human standing in for its operator) scales to zero.
        kubectl("scale", "deployment/sd", "-n", ns, "--replicas=0")
        cr = kubectl.wait_condition("sd", ns, "Ready", reason="ScaledToZero")
        assert "scaled to zero by KEDA ScaledObject sd" in condition(cr, "Ready")["message"]
        assert cr["status"]["autoscaler"] == "KEDA: scaled to zero"
        table = kubectl("get", "t2i", "sd", "-n", ns)
        assert "KEDA: scaled to zero" in table and "AUTOSCALER" in table

        # A spec change rolls out without the operator touching replicas.
        kubectl.apply(t2i("sd", ns, replicas=2, autoscaling=QUEUE, server={"steps": 2}))
        wait_for(
            lambda: (
                steps_arg(kubectl.get("deployment", "sd", ns)) == "2"
                and kubectl.get("t2i", "sd", ns)["status"].get("observedGeneration")
                == kubectl.get("t2i", "sd", ns)["metadata"]["generation"]
            ),
            "the new generation applied",
        )
        dep = deployment(kubectl, ns)
        assert dep["spec"]["replicas"] == 0
        assert "t2i-operator" not in replicas_owners(dep)

        # Back to CPU mode: the ScaledObject is pruned and the operator's HPA takes over.
        cpu = {"enabled": True, "minReplicas": 1, "maxReplicas": 4}
        kubectl.apply(t2i("sd", ns, replicas=2, autoscaling=cpu))
        wait_for(lambda: kubectl.get("scaledobject", "sd", ns) is None, "ScaledObject pruned")
        wait_for(lambda: kubectl.get("hpa", "sd", ns), "the CPU-mode HPA")
        cr = wait_for(
            lambda: (
                (c := kubectl.get("t2i", "sd", ns))
                and not condition(c, "AutoscalerUnavailable")
                and c["status"].get("autoscaler") == "HPA"
                and c
            ),
            "the KEDA condition gone, autoscaler HPA",
        )
    finally:
        kubectl.run("delete", "t2i", "sd", "-n", ns, "--wait=true", check=False)
        remove_keda(kubectl)


def test_schema_refuses_keda_only_fields_in_cpu_mode(kubectl, ns):
    for auto, field in (
        ({"enabled": True, "minReplicas": 0}, "spec.autoscaling.minReplicas 0"),
        ({"enabled": True, "mode": "QueueDepth"}, "prometheusServerAddress"),
    ):
        proc = kubectl.run(
            "apply", "-f", "-", stdin=_yaml(t2i("bad", ns, autoscaling=auto)), check=False
        )
        assert proc.returncode != 0
        assert field in proc.stderr


def _yaml(obj: dict) -> str:
    return yaml.safe_dump(obj)


def steps_arg(dep: dict) -> str | None:
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    return args[args.index("--default-steps") + 1] if "--default-steps" in args else None


def test_apiserver_serves_the_aggregation_layer(kubectl):
    """The front-proxy flags (hack/cluster/localcluster.py) that KEDA's external-metrics API
    server needs: the apiserver publishes them for extension API servers to trust."""
    cm = kubectl.get("configmap", "extension-apiserver-authentication", "kube-system")
    data = cm["data"]
    assert "BEGIN CERTIFICATE" in data["requestheader-client-ca-file"]
    assert data["requestheader-client-ca-file"] != data.get("client-ca-file")
    assert json.loads(data["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(data["requestheader-username-headers"]) == ["X-Remote-User"]
