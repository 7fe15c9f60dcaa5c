"""The control-plane fixture itself: version, nodes, scheduling, CSI PV binding, RBAC."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import Kubectl, wait_for

pytestmark = pytest.mark.e2e

G8I = "node.kubernetes.io/instance-type"
TDX = ("nodepool-label", "tdx-vm-pool")


def test_apiserver_version(kube: Kubectl) -> None:
    version = json.loads(kube("get", "--raw", "/version"))
    assert version["gitVersion"].startswith("v1.35."), version
    client = json.loads(kube("version", "--client", "-o", "json"))["clientVersion"]
    assert client["minor"] == version["minor"], (client, version)


def test_nodes_ready_with_pool_labels(kube: Kubectl) -> None:
    nodes = kube.items("nodes")
    ready = {
        n["metadata"]["name"]: n["metadata"]["labels"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    }
    g8i = [n for n, lb in ready.items() if lb.get(G8I, "").startswith("ecs.g8i.")]
    tdx = [n for n, lb in ready.items() if lb.get(TDX[0]) == TDX[1]]
    other = [n for n, lb in ready.items() if not lb.get(G8I, "").startswith("ecs.g8i.")]
    assert len(set(g8i) - set(tdx)) >= 2, ready
    assert tdx and all(ready[n][G8I].startswith("ecs.g8i.") for n in tdx), ready
    assert other, ready


def test_tdx_node_selector_schedules_only_on_tdx(kube: Kubectl, namespace: str) -> None:
    labels = {"app": "tdx-probe"}
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "tdx-probe", "namespace": namespace},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": {TDX[0]: TDX[1]},
                        "containers": [{"name": "c", "image": "registry.invalid/pause:1"}],
                    },
                },
            },
        }
    )

    def running() -> list[dict]:
        pods = kube.items("pods", namespace, "app=tdx-probe")
        ok = [p for p in pods if p["status"].get("phase") == "Running"]
        return pods if len(ok) == 3 and len(pods) == 3 else []

    pods = wait_for(running, "3 tdx-probe pods Running", timeout=90)
    tdx_nodes = {n["metadata"]["name"] for n in kube.items("nodes", selector=f"{TDX[0]}={TDX[1]}")}
    assert {p["spec"]["nodeName"] for p in pods} <= tdx_nodes
    wait_for(
        lambda: (
            (kube.get("deployment", "tdx-probe", namespace) or {})
            .get("status", {})
            .get("availableReplicas")
            == 3
        ),
        "Deployment tdx-probe Available with 3 replicas",
    )


def test_static_csi_pv_binds_by_label(kube: Kubectl, namespace: str) -> None:
    pv = f"{namespace}-models"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv, "labels": {"alicloud-pvname": pv}},
            "spec": {
                "capacity": {"storage": "5Gi"},
                "accessModes": ["ReadOnlyMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "csi": {
                    "driver": "ossplugin.csi.alibabacloud.com",
                    "volumeHandle": pv,
                    "volumeAttributes": {"bucket": "b", "url": "oss.example", "path": "/m"},
                },
            },
        }
    )
    try:
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "models", "namespace": namespace},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "storageClassName": "",
                    "resources": {"requests": {"storage": "5Gi"}},
                    "selector": {"matchLabels": {"alicloud-pvname": pv}},
                },
            }
        )
        claim = wait_for(
            lambda: (
                (kube.get("pvc", "models", namespace) or {}).get("status", {}).get("phase")
                == "Bound"
                and kube.get("pvc", "models", namespace)
            ),
            "PVC models Bound",
        )
        assert claim["spec"]["volumeName"] == pv
    finally:
        kube.run("delete", "pv", pv, "--wait=false", check=False)


def test_unbound_identity_is_denied(cluster, kube: Kubectl) -> None:
    user_kc = getattr(cluster, "user_kubeconfig", None)
    if user_kc is None:
        pytest.skip("existing cluster: no local static-token identity")  # local run never skips
    r = subprocess.run(
        [str(cluster.kubectl), "--kubeconfig", str(user_kc), "get", "secrets", "-n", "kube-system"],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "forbidden" in r.stderr.lower(), r
    who = Kubectl(kube.binary, str(user_kc)).json("auth", "whoami")
    assert who["status"]["userInfo"]["username"] == "t2i-test-user"


def test_shipped_rbac_denies_outside_its_role(kube: Kubectl, rbac_kubeconfig) -> None:
    op = Kubectl(kube.binary, str(rbac_kubeconfig))
    denied = op.run("get", "secrets", "-n", "kube-system", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied
    assert (
        op.run("auth", "can-i", "create", "clusterrolebindings", check=False).stdout.strip() == "no"
    )
    allowed = op.run("auth", "can-i", "list", "text2imageservices.t2i.dev", "-A", check=False)
    assert allowed.stdout.strip() == "yes", allowed
    assert (
        op.json("auth", "whoami")["status"]["userInfo"]["username"]
        == "system:serviceaccount:t2i-system:t2i-operator"
    )
