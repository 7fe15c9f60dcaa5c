"""Apply → Ready on kwok nodes; kubectl get/scale; rolling image update; TDX pool and back."""

from __future__ import annotations

import json

import pytest
from operator_harness import t2i, wait_for

pytestmark = pytest.mark.e2e
SELECTOR = "app.kubernetes.io/instance={},app.kubernetes.io/name=t2i-server"


def node_labels(kubectl) -> dict[str, dict]:
    return {n["metadata"]["name"]: n["metadata"]["labels"] for n in kubectl.items("nodes")}


def live_pods(kubectl, ns, name):
    return [
        p
        for p in kubectl.items("pods", ns, SELECTOR.format(name))
        if not p["metadata"].get("deletionTimestamp")
    ]


def test_apply_creates_children_and_becomes_ready(kubectl, ns):
    kubectl.apply(t2i("sd", ns))
    cr = kubectl.wait_ready("sd", ns)
    uid = cr["metadata"]["uid"]

    dep = kubectl.get("deployment", "sd", ns)
    svc = kubectl.get("service", "sd", ns)
    for child in (dep, svc):
        (ref,) = child["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "Text2ImageService",
            "sd",
            uid,
            True,
        )
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(5000, "http")]
    assert dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 5000

    pods = live_pods(kubectl, ns, "sd")
    assert len(pods) == 1
    assert pods[0]["status"]["phase"] == "Running"
    labels = node_labels(kubectl)
    node = pods[0]["spec"]["nodeName"]
    assert labels[node]["node.kubernetes.io/instance-type"].startswith("ecs.g8i.")
    assert labels[node].get("nodepool-label") != "tdx-vm-pool"  # G8i pool excludes TDX

    status = cr["status"]
    assert status["url"] == f"http://sd.{ns}.svc:5000"
    assert (status["pool"], status["modelSource"], status["nodes"]) == ("G8i", "Bundled", [node])
    assert (status["replicas"], status["readyReplicas"]) == (1, 1)
    assert status["observedGeneration"] == cr["metadata"]["generation"]

    table = kubectl("get", "t2i", "-n", ns)
    header, row = table.strip().splitlines()
    assert header.split() == [
        "NAME",
        "READY",
        "REPLICAS",
        "POOL",
        "MODEL",
        "URL",
        "AUTOSCALER",
        "AGE",
    ]
    assert row.split()[:7] == [
        *("sd", "True", "1", "G8i", "Bundled", f"http://sd.{ns}.svc:5000"),
        "Off",  # AUTOSCALER: no autoscaling asked for
    ]


def test_kubectl_scale_uses_the_scale_subresource(kubectl, ns):
    kubectl.apply(t2i("sd", ns))
    kubectl.wait_ready("sd", ns)
    kubectl("scale", "t2i/sd", "-n", ns, "--replicas=3")
    cr = wait_for(
        lambda: (c := kubectl.ready("sd", ns)) and c["status"]["readyReplicas"] == 3 and c,
        "3 ready replicas",
    )
    assert cr["spec"]["replicas"] == 3
    assert kubectl.get("deployment", "sd", ns)["spec"]["replicas"] == 3
    assert len(live_pods(kubectl, ns, "sd")) == 3
    scale = json.loads(
        kubectl(
            "get", "--raw", f"/apis/t2i.dev/v1alpha1/namespaces/{ns}/text2imageservices/sd/scale"
        )
    )
    assert scale["status"]["replicas"] == 3
    assert scale["status"]["selector"] == SELECTOR.format("sd")


def test_image_tag_change_rolls_out_and_observed_generation_follows(kubectl, ns):
    kubectl.apply(t2i("sd", ns, replicas=2))
    first = kubectl.wait_ready("sd", ns)
    old_rs = {p["metadata"]["labels"]["pod-template-hash"] for p in live_pods(kubectl, ns, "sd")}
    kubectl.apply(t2i("sd", ns, replicas=2, image={"tag": "0.2.0"}))
    generation = first["metadata"]["generation"] + 1
    cr = kubectl.wait_ready("sd", ns, generation)
    assert cr["status"]["observedGeneration"] == generation
    assert all(c["observedGeneration"] == generation for c in cr["status"]["conditions"])
    dep = kubectl.get("deployment", "sd", ns)
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":0.2.0")
    pods = wait_for(
        lambda: (
            (ps := live_pods(kubectl, ns, "sd"))
            and all(p["spec"]["containers"][0]["image"].endswith(":0.2.0") for p in ps)
            and len(ps) == 2
            and ps
        ),
        "only new pods",
    )
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods}.isdisjoint(old_rs)


def on_pool(kubectl, ns, name, tdx: bool):
    labels = node_labels(kubectl)
    pods = live_pods(kubectl, ns, name)
    if len(pods) != 2 or any(p["status"].get("phase") != "Running" for p in pods):
        return None
    nodes = {p["spec"]["nodeName"] for p in pods}
    on_tdx = {labels[n].get("nodepool-label") == "tdx-vm-pool" for n in nodes}
    return nodes if on_tdx == {tdx} else None


def pool_state(kubectl, ns, name):
    """What a failed wait reports: CR status, Deployment status, pods and node readiness."""
    cr = kubectl.get("t2i", name, ns) or {}
    dep = kubectl.get("deployment", name, ns) or {}
    pods = kubectl.items("pods", ns, SELECTOR.format(name))
    return {
        "cr": (cr.get("metadata", {}).get("generation"), cr.get("status")),
        "deployment": (dep.get("metadata", {}).get("generation"), dep.get("status")),
        "pods": [
            (
                p["metadata"]["name"],
                p["spec"].get("nodeName"),
                p["status"].get("phase"),
                [(c["type"], c["status"]) for c in p["status"].get("conditions", [])],
            )
            for p in pods
        ],
        "nodes": {
            n["metadata"]["name"]: [
                c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"
            ]
            + [t["key"] for t in n["spec"].get("taints", [])]
            for n in kubectl.items("nodes")
        },
    }


def test_switch_to_tdx_pool_and_back(kubectl, ns):
    def explain():
        return pool_state(kubectl, ns, "sd")

    kubectl.apply(t2i("sd", ns, replicas=2))
    kubectl.wait_ready("sd", ns, explain=explain)
    assert on_pool(kubectl, ns, "sd", tdx=False)

    kubectl.apply(t2i("sd", ns, replicas=2, placement={"pool": "TDX"}))
    cr = kubectl.wait_ready("sd", ns, 2, explain=explain)
    nodes = wait_for(
        lambda: on_pool(kubectl, ns, "sd", tdx=True), "every pod on a TDX node", explain=explain
    )
    affinity = kubectl.get("deployment", "sd", ns)["spec"]["template"]["spec"]["affinity"]
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {"key": "nodepool-label", "operator": "In", "values": ["tdx-vm-pool"]}
            ]
        }
    ]
    cr = wait_for(
        lambda: (c := kubectl.get("t2i", "sd", ns)) and set(c["status"]["nodes"]) == nodes and c,
        "status.nodes naming the TDX nodes",
        explain=explain,
    )
    assert cr["status"]["pool"] == "TDX"

    kubectl.apply(t2i("sd", ns, replicas=2, placement={"pool": "G8i"}))
    kubectl.wait_ready("sd", ns, 3, explain=explain)
    wait_for(lambda: on_pool(kubectl, ns, "sd", tdx=False), "no pod on a TDX node", explain=explain)
