"""Invalid specs are rejected by the API server (schema and CEL) with the field named, and the
operator's identity has exactly the shipped, wildcard-free permissions."""

from __future__ import annotations

import pytest
import yaml
from operator_harness import ROOT, SA_USER, condition, t2i, wait_for

pytestmark = pytest.mark.e2e

INVALID = [
    ({"model": {"source": "OSS"}}, "spec.model.oss"),
    ({"model": {"source": "OSS", "oss": {"bucket": "bkt"}}}, "spec.model.oss.endpoint"),
    (
        {"model": {"source": "OSS", "oss": {"bucket": "bkt", "endpoint": "e"}}},
        "spec.model.oss.credentialsSecretRef.name",
    ),
    ({"model": {"source": "PVC"}}, "spec.model.pvc"),
    ({"model": {"hostPath": {"path": "/data"}}}, "spec.model.hostPath"),
    ({"model": {"source": "S3"}}, "spec.model.source"),
    ({"autoscaling": {"minReplicas": 5}}, "spec.autoscaling.minReplicas"),
    ({"autoscaling": {"minReplicas": 3, "maxReplicas": 2}}, "spec.autoscaling.minReplicas"),
    ({"placement": {"pool": "GPU"}}, "spec.placement.pool"),
    ({"nodeSelector": {"nodepool-label": "tdx-vm-pool"}}, "spec.nodeSelector"),
    ({"replicas": -1}, "spec.replicas"),
    ({"service": {"port": 70000}}, "spec.service.port"),
    ({"server": {"backend": "cuda"}}, "spec.server.backend"),
    ({"server": {"steps": 0}}, "spec.server.steps"),
    ({"outputDirPath": "relative/dir"}, "spec.outputDirPath"),
    # issue 16: names, paths, command-line options, quantities, URLs
    ({"outputDirPath": "/tmp/../etc"}, "spec.outputDirPath"),
    ({"model": {"mountPath": "/models/.."}}, "spec.model.mountPath"),
    (
        {"model": {"source": "HostPath", "hostPath": {"path": "/data/../../etc"}}},
        "spec.model.hostPath.path",
    ),
    ({"image": {"pullSecrets": [{"name": "../x"}]}}, "spec.image.pullSecrets[0].name"),
    ({"model": {"source": "PVC", "pvc": {"claimName": "a/b"}}}, "spec.model.pvc.claimName"),
    (
        {
            "model": {
                "source": "OSS",
                "oss": {
                    "bucket": "bkt",
                    "endpoint": "e",
                    "otherOpts": "-o allow_other; rm -rf /",
                    "credentialsSecretRef": {"name": "s"},
                },
            }
        },
        "spec.model.oss.otherOpts",
    ),
    ({"resources": {"limits": {"cpu": "NaN"}}}, "spec.resources.limits.cpu"),
    ({"server": {"publicBaseURL": "javascript:alert(1)"}}, "spec.server.publicBaseURL"),
    ({"server": {"publicBaseURL": "https://t2i.example.com:99999"}}, "spec.server.publicBaseURL"),
    ({"server": {"gracePeriodSeconds": 1}}, "spec.server.gracePeriodSeconds"),
    ({"nodeSelector": {"bad key!": "x"}}, "spec.nodeSelector"),
    ({"image": {"tag": "x" * 200}}, "spec.image.tag"),
    ({"tolerations": [{"key": "k", "value": "v" * 64}]}, "spec.tolerations[0].value"),
    # issue 21: the node's configfs-tsm only for TDX pools
    (
        {"placement": {"tdxEvidence": {"configfsTsm": True}}},
        "spec.placement.tdxEvidence.configfsTsm",
    ),
]


@pytest.mark.parametrize(("spec", "field"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_spec_is_rejected_naming_the_field(kubectl, ns, spec, field):
    body = t2i("bad", ns)
    body["spec"] = spec
    proc = kubectl.run("create", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert proc.returncode != 0
    assert field in proc.stderr, proc.stderr
    assert kubectl.get("t2i", "bad", ns) is None


def test_valid_tdx_spec_with_matching_node_selector_is_accepted(kubectl, ns):
    body = t2i(
        "good", ns, placement={"pool": "TDX"}, nodeSelector={"nodepool-label": "tdx-vm-pool"}
    )
    kubectl("create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(body))


def test_new_server_fields_are_accepted_and_explained(kubectl, ns):
    """Issue 17's operator side: spec.server.publicBaseURL and gracePeriodSeconds."""
    body = t2i(
        "good",
        ns,
        server={"publicBaseURL": "https://t2i.example.com:8443/api", "gracePeriodSeconds": 120},
        autoscaling={"enabled": True, "targetMemoryUtilizationPercentage": 0},
    )
    kubectl("create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(body))
    text = kubectl("explain", "t2i.spec.server")
    assert "publicBaseURL" in text and "gracePeriodSeconds" in text


def test_explain_reads_well(kubectl, operator):
    text = kubectl("explain", "t2i.spec.model.oss.credentialsSecretRef")
    assert "AccessKey" in text
    assert "accessKeyIdKey" in text


def test_operator_identity_has_only_the_shipped_permissions(kubectl, operator):
    role = kubectl.get("clusterrole", "t2i-operator")
    shipped = [d for d in yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text())]
    (want,) = [d for d in shipped if d["kind"] == "ClusterRole"]
    assert role["rules"] == want["rules"]
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, [])
    binding = kubectl.get("clusterrolebinding", "t2i-operator")
    assert binding["roleRef"]["name"] == "t2i-operator"

    def can(*args):
        return kubectl.run("auth", "can-i", *args, "--as", SA_USER, check=False).stdout.strip()

    assert can("patch", "deployments", "-A") == "yes"
    assert can("delete", "persistentvolumes") == "yes"
    assert can("watch", "nodes") == "yes"
    assert can("delete", "poddisruptionbudgets.policy", "-A") == "yes"
    for denied in (
        ("create", "clusterroles"),
        ("patch", "nodes"),  # nodes are read-only (the NodesFit condition)
        ("delete", "nodes"),
        ("create", "pods", "-A", "--subresource=eviction"),  # a budget, never an eviction
        ("delete", "namespaces"),
        ("create", "pods", "-A"),
        ("update", "text2imageservices.t2i.dev", "-A"),
        ("watch", "secrets", "-A"),
        ("list", "secrets", "-A"),
        ("impersonate", "users"),
    ):
        assert can(*denied) == "no", denied


def test_child_rejected_by_the_api_is_reported_and_recovers(kubectl, ns):
    """Passed through to the Deployment but invalid there: status and an Event say why."""
    bad = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    kubectl.apply(t2i("sd", ns, strategy=bad))
    cr = kubectl.wait_condition("sd", ns, "Ready", reason="ApplyRejected")
    assert "spec.strategy.rollingUpdate" in condition(cr, "Ready")["message"]
    wait_for(
        lambda: any(
            e["reason"] == "ApplyRejected" and e["type"] == "Warning"
            for e in kubectl.items("events", ns)
        ),
        "a Warning Event",
    )
    kubectl.apply(t2i("sd", ns, strategy={"type": "Recreate"}))
    wait_for(
        lambda: condition(kubectl.get("t2i", "sd", ns), "Ready").get("status") == "True",
        "Ready after the fix",
        timeout=120,
    )
    assert kubectl.get("deployment", "sd", ns)["spec"]["strategy"] == {"type": "Recreate"}
