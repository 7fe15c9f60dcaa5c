"""Serving at scale (issue 18 items 1 and 4), rendered without a cluster: the shared image
volume, the ImagesShared condition, the ServiceMonitor and its RBAC."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from t2i_operator import spec as spec_mod
from t2i_operator.apply import candidates
from t2i_operator.render import render_all
from t2i_operator.render.deployment import OUTPUT_VOLUME
from t2i_operator.status import images_shared
from t2i_operator.validate import SpecError, check
from tutorial import OWNER, by_kind

ROOT = Path(__file__).resolve().parents[2]
SHARED = {"type": "PVC", "pvc": {"claimName": "t2i-images"}}


def pod_spec(raw: dict) -> dict:
    kinds = by_kind(render_all(spec_mod.parse(raw), OWNER))
    return kinds["Deployment"]["spec"]["template"]["spec"]


def output_volume(raw: dict) -> dict:
    (volume,) = [v for v in pod_spec(raw)["volumes"] if v["name"] == OUTPUT_VOLUME]
    return volume


def test_default_image_storage_is_the_pods_emptydir():
    assert output_volume({}) == {"name": OUTPUT_VOLUME, "emptyDir": {}}


def test_pvc_image_storage_mounts_the_shared_claim_read_write_at_the_output_dir():
    raw = {"imageStorage": SHARED, "outputDirPath": "/data/out", "replicas": 3}
    assert output_volume(raw) == {
        "name": OUTPUT_VOLUME,
        "persistentVolumeClaim": {"claimName": "t2i-images"},
    }
    (container,) = pod_spec(raw)["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == OUTPUT_VOLUME]
    assert mount == {"name": OUTPUT_VOLUME, "mountPath": "/data/out"}  # writable
    assert container["args"][container["args"].index("--output-dir") + 1] == "/data/out"


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        ({}, "True", "SingleReplica"),
        ({"replicas": 2}, "False", "EmptyDirWithReplicas"),
        ({"autoscaling": {"enabled": True, "maxReplicas": 4}}, "False", "EmptyDirWithReplicas"),
        ({"autoscaling": {"enabled": True, "maxReplicas": 1}, "replicas": 3}, "True", None),
        ({"replicas": 2, "imageStorage": SHARED}, "True", "SharedClaim"),
    ],
)
def test_images_shared_condition(raw, status, reason):
    cond = images_shared(spec_mod.parse(raw))
    assert cond.status == status
    if reason:
        assert cond.reason == reason
    if status == "False":
        assert "spec.imageStorage.type" in cond.message


@pytest.mark.parametrize(
    "raw", [{"imageStorage": {"type": "PVC"}}, {"imageStorage": {"pvc": {"claimName": "x"}}}]
)
def test_image_storage_type_and_claim_go_together(raw):
    with pytest.raises(SpecError, match=r"spec\.imageStorage\.pvc\.claimName"):
        check(spec_mod.parse(raw))


def test_crd_rule_for_image_storage_names_the_field():
    crd = yaml.safe_load((ROOT / "crds" / "t2i.dev_text2imageservices.yaml").read_text())
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    storage = props["properties"]["imageStorage"]
    assert storage["properties"]["type"]["enum"] == ["EmptyDir", "PVC"]
    (rule,) = storage["x-kubernetes-validations"]
    assert rule["message"].startswith("spec.imageStorage.pvc")


def kinds_of(raw: dict, available: bool) -> dict:
    return by_kind(render_all(spec_mod.parse(raw), OWNER, service_monitors=available))


def test_service_monitor_only_while_the_api_is_served_and_not_opted_out():
    assert "ServiceMonitor" not in kinds_of({}, available=False)
    assert "ServiceMonitor" not in kinds_of({"monitoring": {"serviceMonitor": False}}, True)
    monitor = kinds_of({}, available=True)["ServiceMonitor"]
    service = kinds_of({}, available=True)["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"] == OWNER.name
    assert monitor["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    # It selects our Service (by labels the Service carries) on its named port.
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [OWNER.namespace]}


def test_service_monitor_labels_and_interval_from_the_spec():
    raw = {
        "monitoring": {
            "interval": "15s",
            "labels": {"release": "kps", "app.kubernetes.io/name": "x"},
        }
    }
    monitor = kinds_of(raw, available=True)["ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["metadata"]["labels"]["app.kubernetes.io/name"] == "t2i-server"  # ours win
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"


def test_service_monitor_is_a_prune_candidate_only_while_served():
    kinds = lambda served: {r.kind for r in candidates(OWNER, [], served)}  # noqa: E731
    assert "ServiceMonitor" in kinds(True) and "ServiceMonitor" not in kinds(False)


def test_rbac_for_service_monitors_is_exactly_what_the_operator_does():
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()))
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    rules = [r for r in role["rules"] if "monitoring.coreos.com" in r["apiGroups"]]
    assert rules == [
        {
            "apiGroups": ["monitoring.coreos.com"],
            "resources": ["servicemonitors"],
            "verbs": ["get", "create", "patch", "delete"],
        }
    ]  # no list/watch; no rule on CRDs (detection reads discovery, open to every identity)
    assert not any("apiextensions.k8s.io" in r["apiGroups"] for r in role["rules"])
