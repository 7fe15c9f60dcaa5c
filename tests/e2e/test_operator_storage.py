"""OSS model storage: missing Secret → Ready=False, Event, nothing applied; recovery; Secret/PV/PVC
bound; back to the bundled model → all three removed (the PV by the finalizer's cleanup)."""

from __future__ import annotations

import base64

import pytest
from operator_harness import condition, model_claim, model_volume, t2i, wait_for

pytestmark = pytest.mark.e2e
AK_ID = "LTAI5tE2eTestAccessKeyId"
AK_SECRET = "e2eSecretValueThatMustNeverLeak"


def oss(secret="models-oss-secret"):
    return {
        "source": "OSS",
        "oss": {
            "bucket": "my-models",
            "endpoint": "oss-cn-beijing-internal.aliyuncs.com",
            "path": "/models",
            "credentialsSecretRef": {"name": secret},
        },
    }


def children(kubectl, ns, name):
    return {
        "secret": kubectl.get("secret", f"{name}-oss-credentials", ns),
        "pvc": model_claim(kubectl, ns, name),
        "pv": model_volume(kubectl, ns, name),
        "deployment": kubectl.get("deployment", name, ns),
        "service": kubectl.get("service", name, ns),
    }


def user_secret(ns):
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "models-oss-secret", "namespace": ns},
        "stringData": {"akId": AK_ID, "akSecret": AK_SECRET},
    }


def test_missing_secret_then_recovery_then_back_to_bundled(kubectl, ns, operator):
    kubectl.apply(t2i("sd", ns, model=oss()))
    cr = kubectl.wait_condition("sd", ns, "Ready", reason="SecretNotFound")
    ready = condition(cr, "Ready")
    assert ready["status"] == "False"
    assert "spec.model.oss.credentialsSecretRef.name" in ready["message"]
    assert condition(cr, "Degraded")["status"] == "True"
    events = wait_for(
        lambda: [
            e
            for e in kubectl.items("events", ns)
            if e["involvedObject"]["name"] == "sd"
            and e["type"] == "Warning"
            and e["reason"] == "SecretNotFound"
        ],
        "a Warning Event on the CR",
    )
    assert "models-oss-secret" in events[0]["message"]
    # nothing half-applied: no child at all
    assert all(v is None for v in children(kubectl, ns, "sd").values())

    kubectl.apply(user_secret(ns))
    cr = kubectl.wait_condition("sd", ns, "Ready", status="True", timeout=120)
    assert cr["status"]["modelSource"] == "OSS"
    kids = children(kubectl, ns, "sd")
    uid = cr["metadata"]["uid"]
    for kind in ("secret", "pvc", "deployment", "service"):
        assert kids[kind]["metadata"]["ownerReferences"][0]["uid"] == uid, kind
    decoded = {k: base64.b64decode(v).decode() for k, v in kids["secret"]["data"].items()}
    assert decoded == {"akId": AK_ID, "akSecret": AK_SECRET}
    pv = kids["pv"]
    assert "ownerReferences" not in pv["metadata"]
    assert pv["metadata"]["labels"]["alicloud-pvname"] == pv["metadata"]["name"]
    assert pv["spec"]["csi"]["driver"] == "ossplugin.csi.alibabacloud.com"
    assert pv["spec"]["csi"]["nodePublishSecretRef"] == {
        "name": "sd-oss-credentials",
        "namespace": ns,
    }
    assert pv["spec"]["csi"]["volumeAttributes"]["bucket"] == "my-models"
    assert pv["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    wait_for(
        lambda: (model_claim(kubectl, ns, "sd") or {}).get("status", {}).get("phase") == "Bound",
        "the PVC bound to the PV",
    )
    pod_spec = kids["deployment"]["spec"]["template"]["spec"]
    claim = pod_spec["volumes"][1]["persistentVolumeClaim"]["claimName"]
    assert claim == kids["pvc"]["metadata"]["name"]
    assert pod_spec["containers"][0]["image"].endswith("-lite")

    # no secret value in status, events or the operator's log
    everything = (
        kubectl("get", "t2i,events", "-n", ns, "-o", "json") + operator.log_path.read_text()
    )
    for value in (AK_ID, AK_SECRET):
        assert value not in everything
        assert base64.b64encode(value.encode()).decode() not in everything

    kubectl.apply(t2i("sd", ns))  # back to the bundled model
    wait_for(
        lambda: (
            (k := children(kubectl, ns, "sd"))
            and k["secret"] is None
            and k["pvc"] is None
            and k["pv"] is None
            and k
        ),
        "OSS Secret, PVC and PV removed",
        timeout=120,
    )
    cr = kubectl.wait_condition("sd", ns, "Ready", status="True")
    assert cr["status"]["modelSource"] == "Bundled"
    assert kubectl.get("secret", "models-oss-secret", ns) is not None  # the user's stays


def test_delete_cr_removes_every_child_including_the_pv(kubectl, ns):
    kubectl.apply(user_secret(ns))
    kubectl.apply(t2i("sd", ns, model=oss(), autoscaling={"enabled": True}))
    wait_for(
        lambda: (
            all(v is not None for v in children(kubectl, ns, "sd").values())
            and kubectl.get("hpa", "sd", ns)
        ),
        "all children",
    )
    kubectl("delete", "t2i", "sd", "-n", ns, "--wait=true", "--timeout=60s")
    wait_for(
        lambda: (
            all(v is None for v in children(kubectl, ns, "sd").values())
            and kubectl.get("hpa", "sd", ns) is None
            and not kubectl.items("pods", ns, "app.kubernetes.io/instance=sd")
        ),
        "every child gone, the cluster-scoped PV included",
        timeout=120,
    )


def test_changing_the_oss_source_replaces_the_volume_pair_without_downtime(kubectl, ns):
    """Issue 16 item 11: a PV's CSI source is immutable, so a new bucket used to read
    ApplyRejected forever. Now a new PV + PVC pair is created, the Deployment rolls over to it
    (an old pod keeps serving until a new one is ready) and the old pair is pruned."""
    kubectl.apply(user_secret(ns))
    kubectl.apply(t2i("sd", ns, model=oss(), replicas=2))
    wait_for(
        lambda: condition(kubectl.get("t2i", "sd", ns), "Ready").get("status") == "True",
        "Ready=True",
    )
    old_pv, old_pvc = model_volume(kubectl, ns, "sd"), model_claim(kubectl, ns, "sd")
    moved = oss()
    moved["oss"]["bucket"] = "my-models-v2"
    kubectl.apply(t2i("sd", ns, model=moved, replicas=2))

    seen_reasons: set[str] = set()
    min_ready = [2]

    def rolled_over():
        cr = kubectl.get("t2i", "sd", ns)
        seen_reasons.add(condition(cr, "Ready").get("reason", ""))
        dep = kubectl.get("deployment", "sd", ns)
        min_ready[0] = min(min_ready[0], (dep.get("status") or {}).get("readyReplicas") or 0)
        return (
            cr["status"].get("observedGeneration") == 2
            and condition(cr, "Ready").get("status") == "True"
            and not model_volumes_named(kubectl, ns, old_pv, old_pvc)
            and cr
        )

    wait_for(rolled_over, "generation 2 Ready and the old volume pair gone", timeout=180)
    new_pv, new_pvc = model_volume(kubectl, ns, "sd"), model_claim(kubectl, ns, "sd")
    assert new_pv["spec"]["csi"]["volumeAttributes"]["bucket"] == "my-models-v2"
    assert new_pvc["status"]["phase"] == "Bound"
    assert new_pvc["spec"]["volumeName"] == new_pv["metadata"]["name"]
    pod_spec = kubectl.get("deployment", "sd", ns)["spec"]["template"]["spec"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod_spec["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == [new_pvc["metadata"]["name"]]
    assert "ApplyRejected" not in seen_reasons, seen_reasons
    assert min_ready[0] >= 1  # some replica stayed ready throughout (as far as polling sees)


def model_volumes_named(kubectl, ns, pv: dict, pvc: dict) -> list[str]:
    """Which of the given PV / PVC still exist."""
    left = []
    if kubectl.get("pv", pv["metadata"]["name"]) is not None:
        left.append(pv["metadata"]["name"])
    if kubectl.get("pvc", pvc["metadata"]["name"], ns) is not None:
        left.append(pvc["metadata"]["name"])
    return left
