"""Issue 16 on the real control plane, under the shipped RBAC: no tenant reaches another
namespace through the operator, a spec that cannot be applied never reads as applied, long
names, the scale subresource without spec.replicas, an HPA without the memory metric."""

from __future__ import annotations

import base64
import json
import time

import localcluster  # hack/cluster, on sys.path by conftest
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from operator_harness import (
    condition,
    model_claim,
    model_volume,
    mutating_requests,
    t2i,
    unique,
    wait_for,
)
from t2i_operator import reconcile
from t2i_operator.kube import Kube

pytestmark = pytest.mark.e2e
VICTIM_VALUE = "victim-db-root-password"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def oss_model(secret_name: str) -> dict:
    return {
        "source": "OSS",
        "oss": {
            "bucket": "my-models",
            "endpoint": "oss-cn-beijing-internal.aliyuncs.com",
            "credentialsSecretRef": {"name": secret_name},
        },
    }


@pytest.fixture
def victim(kubectl, operator):
    name = unique("victim")
    kubectl("create", "namespace", name)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db-root", "namespace": name},
        "stringData": {"akId": VICTIM_VALUE, "akSecret": VICTIM_VALUE},
    }
    kubectl.apply(secret)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def leaked_secrets(kubectl, ns) -> list[str]:
    value = base64.b64encode(VICTIM_VALUE.encode()).decode()
    return [
        s["metadata"]["name"]
        for s in kubectl.items("secrets", ns)
        if value in (s.get("data") or {}).values()
    ]


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (lambda v: oss_model(f"../../{v}/secrets/db-root"), "credentialsSecretRef.name"),
        (lambda v: oss_model(f"..%2F..%2F{v}%2Fsecrets%2Fdb-root"), "credentialsSecretRef.name"),
        (
            lambda v: {"source": "PVC", "pvc": {"claimName": f"../../{v}/secrets/db-root"}},
            "spec.model.pvc.claimName",
        ),
    ],
    ids=["dotdot", "percent-encoded", "pvc"],
)
def test_a_spec_name_cannot_reach_another_namespace(kubectl, ns, victim, model, field):
    body = t2i("thief", ns, model=model(victim))
    proc = kubectl.run("create", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert proc.returncode != 0, "the API server accepted a path as a Secret/PVC name"
    assert field in proc.stderr, proc.stderr
    assert leaked_secrets(kubectl, ns) == []


def test_invalid_spec_on_a_ready_cr_is_reported_and_never_claimed(kubectl, ns, audit_log):
    """Item 2 + 3: a change the renderer cannot use → InvalidSpec + Warning Event, the running
    generation stays in observedGeneration/pool, a pod event does not stamp the new one, and the
    operator does not retry/patch in a loop; fixing the spec applies it."""
    kubectl.apply(t2i("sd", ns))
    wait_for(
        lambda: condition(kubectl.get("t2i", "sd", ns), "Ready").get("status") == "True",
        "Ready=True",
    )
    bad = t2i("sd", ns, placement={"pool": "TDX"})
    bad["spec"]["resources"]["limits"]["cpu"] = "-1"  # the schema's quantity pattern allows a sign
    kubectl.apply(bad)

    def invalid():
        cr = kubectl.get("t2i", "sd", ns)
        return condition(cr, "Ready").get("reason") == "InvalidSpec" and cr

    cr = wait_for(invalid, "Ready=False reason InvalidSpec")
    ready = condition(cr, "Ready")
    assert ready["status"] == "False" and "spec.resources.limits.cpu" in ready["message"]
    assert ready["observedGeneration"] == 2
    assert cr["status"]["observedGeneration"] == 1
    assert cr["status"]["pool"] == "G8i"
    events = wait_for(
        lambda: [
            e
            for e in kubectl.items("events", ns)
            if e.get("reason") == "InvalidSpec" and e["involvedObject"]["name"] == "sd"
        ],
        "a Warning Event InvalidSpec",
    )
    assert events[0]["type"] == "Warning" and "spec.resources.limits.cpu" in events[0]["message"]

    # A pod event must not stamp generation 2 as applied.
    (pod,) = [p["metadata"]["name"] for p in kubectl.items("pods", ns)]
    kubectl("delete", "pod", pod, "-n", ns, "--wait=false")
    wait_for(
        lambda: any(
            p["metadata"]["name"] != pod and p["status"].get("phase") == "Running"
            for p in kubectl.items("pods", ns)
        ),
        "the replacement pod running",
    )
    since = time.time()
    deadline = since + 15  # longer than kopf's 10 s retry backoff: an observation window
    while time.time() < deadline:
        cr = kubectl.get("t2i", "sd", ns)
        assert cr["status"]["observedGeneration"] == 1, cr["status"]
        assert condition(cr, "Ready")["reason"] == "InvalidSpec", cr["status"]
        time.sleep(1)
    dep = kubectl.get("deployment", "sd", ns)
    terms = dep["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][REQUIRED]
    assert "ecs.g8i.4xlarge" in json.dumps(terms)  # still the G8i pool that runs
    if audit_log is not None:
        # No retry loop: kopf's retries PATCH the CR's annotations every 10 s. (Status writes
        # that follow the replacement pod's readiness are facts, and allowed.)
        writes = [
            e
            for e in mutating_requests(audit_log, since, namespace=ns)
            if (e.get("objectRef") or {}).get("resource") == "text2imageservices"
            and (e.get("objectRef") or {}).get("subresource") != "status"
        ]
        assert writes == [], [(e["verb"], e["requestURI"]) for e in writes]

    kubectl.apply(t2i("sd", ns, placement={"pool": "TDX"}))
    cr = wait_for(
        lambda: (
            (c := kubectl.get("t2i", "sd", ns))
            and c["status"].get("observedGeneration") == 3
            and condition(c, "Ready").get("status") == "True"
            and c
        ),
        "generation 3 applied and Ready",
    )
    assert cr["status"]["pool"] == "TDX"


def test_long_names_are_rejected_or_fit_every_child(kubectl, ns):
    """Item 4: > 63 characters → rejected naming metadata.name; 63 with OSS storage → every
    child exists (the PV's alicloud-pvname label is hashed to fit) and the CR is Ready."""
    too_long = "a" * 64
    proc = kubectl.run("create", "-f", "-", stdin=yaml.safe_dump(t2i(too_long, ns)), check=False)
    assert proc.returncode != 0 and "metadata.name" in proc.stderr, proc.stderr
    dotted = "a.b"
    proc = kubectl.run("create", "-f", "-", stdin=yaml.safe_dump(t2i(dotted, ns)), check=False)
    assert proc.returncode != 0 and "metadata.name" in proc.stderr, proc.stderr

    name = "l" * 63
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "oss", "namespace": ns},
            "stringData": {"akId": "id", "akSecret": "secret"},
        }
    )
    kubectl.apply(t2i(name, ns, model=oss_model("oss")))
    cr = kubectl.wait_condition(name, ns, "Ready", status="True")
    assert cr["status"]["observedGeneration"] == 1
    pv = model_volume(kubectl, ns, name)
    assert pv is not None and len(pv["metadata"]["labels"]["alicloud-pvname"]) <= 63
    assert model_claim(kubectl, ns, name)["status"]["phase"] == "Bound"


def test_scale_subresource_works_without_spec_replicas(kubectl, ns):
    """Item 9: an autoscaler reads /scale; spec.replicas is defaulted to 1 in the schema."""
    body = t2i("sd", ns)
    assert "replicas" not in body["spec"]
    kubectl.apply(body)
    scale = json.loads(
        kubectl(
            "get", "--raw", f"/apis/t2i.dev/v1alpha1/namespaces/{ns}/text2imageservices/sd/scale"
        )
    )
    assert scale["spec"]["replicas"] == 1


def test_memory_metric_can_be_turned_off(kubectl, ns):
    """Item 10: targetMemoryUtilizationPercentage 0 → an HPA on CPU only."""
    kubectl.apply(
        t2i("sd", ns, autoscaling={"enabled": True, "targetMemoryUtilizationPercentage": 0})
    )
    hpa = wait_for(lambda: kubectl.get("hpa", "sd", ns), "the HPA")
    names = [m["resource"]["name"] for m in hpa["spec"]["metrics"]]
    assert names == ["cpu"]


def test_hand_edited_service_port_is_reverted(kubectl, ns):
    """Item 5: a port edited by hand kept our port's name under another key; the apply used to
    fail with `spec.ports[1].name: Duplicate value: "http"` forever (ApplyRejected)."""
    kubectl.apply(t2i("sd", ns))
    wait_for(
        lambda: condition(kubectl.get("t2i", "sd", ns), "Ready").get("status") == "True",
        "Ready=True",
    )
    kubectl(
        "patch", "service", "sd", "-n", ns, "--type=json",
        "-p", '[{"op": "replace", "path": "/spec/ports/0/port", "value": 5001}]',
    )  # fmt: skip

    def reverted():
        svc = kubectl.get("service", "sd", ns)
        return [(p["name"], p["port"]) for p in svc["spec"]["ports"]] == [("http", 5000)] and svc

    wait_for(
        reverted,
        "the Service port back at 5000",
        explain=lambda: (
            kubectl.get("service", "sd", ns)["spec"]["ports"],
            condition(kubectl.get("t2i", "sd", ns), "Ready"),
        ),
    )
    cr = kubectl.get("t2i", "sd", ns)
    assert condition(cr, "Ready")["reason"] != "ApplyRejected", cr["status"]


def test_secret_copy_cannot_be_tampered_and_a_rotated_key_still_arrives(kubectl, ns):
    """Item 8: the Secret copy is not watched (that needs list/watch on every Secret), so it
    is immutable; rotating the user's key replaces it."""

    def user_secret(value: str) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "oss", "namespace": ns},
            "stringData": {"akId": "id", "akSecret": value},
        }

    kubectl.apply(user_secret("first"))
    kubectl.apply(t2i("sd", ns, model=oss_model("oss")))
    copy = wait_for(lambda: kubectl.get("secret", "sd-oss-credentials", ns), "the Secret copy")
    assert copy["immutable"] is True
    proc = kubectl.run(
        "patch", "secret", "sd-oss-credentials", "-n", ns, "--type=merge",
        "-p", '{"data": {"akSecret": "dGFtcGVyZWQ="}}', check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "immutable" in proc.stderr, proc.stderr

    kubectl.apply(user_secret("second"))
    kubectl("annotate", "t2i", "sd", "-n", ns, "touch=1")  # or wait for the resync

    def rotated():
        s = kubectl.get("secret", "sd-oss-credentials", ns)
        return s and base64.b64decode(s["data"]["akSecret"]).decode() == "second"

    wait_for(rotated, "the rotated key in the copy")


def test_only_resources_with_unwatched_inputs_carry_the_finalizer(kubectl, ns):
    """Item 11: a bundled-model resource is deleted without waiting for the operator."""
    kubectl.apply(t2i("sd", ns))
    wait_for(
        lambda: condition(kubectl.get("t2i", "sd", ns), "Ready").get("status") == "True",
        "Ready=True",
    )
    assert not kubectl.get("t2i", "sd", ns)["metadata"].get("finalizers")


def test_canonicalised_values_cost_no_writes(kubectl, ns, audit_log):
    """Item 6: quantities the API server rewrites ("0.5" → 500m, "1024Mi" → 1Gi) and the PV's
    storageClassName "" (dropped) used to cost PATCHes on every pass and Deployment event."""
    if audit_log is None:
        pytest.skip("needs the control plane's audit log")
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "oss", "namespace": ns},
            "stringData": {"akId": "id", "akSecret": "secret"},
        }
    )
    body = t2i("sd", ns, model=oss_model("oss"))
    body["spec"]["resources"] = {
        "requests": {"cpu": "0.5", "memory": "1024Mi"},
        "limits": {"cpu": "1", "memory": "2048Mi"},
    }
    kubectl.apply(body)
    wait_for(
        lambda: condition(kubectl.get("t2i", "sd", ns), "Ready").get("status") == "True",
        "Ready=True",
    )
    since = time.time()
    deadline = since + 12  # observation window: two resync passes (--resync-seconds=5)
    while time.time() < deadline:
        time.sleep(1)
    writes = [
        (e["verb"], e["requestURI"])
        for e in mutating_requests(audit_log, since)
        if (
            f"/namespaces/{ns}/" in e.get("requestURI", "") or f"{ns}-sd-models-" in e["requestURI"]
        )
        and not e["requestURI"].split("?")[0].endswith("/status")  # settling readiness is news
    ]
    assert writes == []


def _big_but_valid_scheduling() -> dict:
    """Soft rules only (kwok nodes must still take the pod), every list near its bound."""
    key = "k" * 60 + ".example.com/" + "n" * 60
    expr = {"key": key, "operator": "In", "values": [f"v{i}-" + "x" * 58 for i in range(8)]}
    term = {"matchExpressions": [expr] * 4}
    labels = {f"l{i}": "y" * 63 for i in range(4)}
    pod_term = {
        "labelSelector": {"matchLabels": labels, "matchExpressions": [expr] * 2},
        "namespaceSelector": {
            "matchLabels": dict(list(labels.items())[:2]),
            "matchExpressions": [expr],
        },
        "namespaces": [f"ns{i}" for i in range(8)],
        "topologyKey": "kubernetes.io/hostname",
    }
    soft = [{"weight": 1, "podAffinityTerm": pod_term}] * 2
    return {
        "tolerations": [{"key": key[:-3] + f"{i:03d}", "operator": "Exists"} for i in range(16)],
        "affinity": {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 1, "preference": term}
                ]
                * 4
            },
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": soft},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": soft},
        },
    }


def test_large_spec_and_annotations_neither_block_handling_nor_deletion(kubectl, ns):
    """Item 7: kopf's last-handled record used to copy the spec and the user's annotations into
    one more annotation; past 256 KiB together that write was refused and an OSS resource (it
    carries the PV finalizer) could not be deleted. The record is now a fixed-size digest."""
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "oss", "namespace": ns},
            "stringData": {"akId": "id", "akSecret": "secret"},
        }
    )
    body = t2i("big", ns, model=oss_model("oss"), **_big_but_valid_scheduling())
    body["metadata"]["annotations"] = {"example.com/notes": "n" * 180_000}
    assert len(json.dumps(body)) > 200_000
    kubectl.run("create", "-f", "-", stdin=json.dumps(body))  # no last-applied copy
    wait_for(
        lambda: condition(kubectl.get("t2i", "big", ns), "Ready").get("status") == "True",
        "Ready=True",
    )
    cr = kubectl.get("t2i", "big", ns)
    assert cr["status"]["observedGeneration"] == cr["metadata"]["generation"]
    assert cr["metadata"].get("finalizers")  # the OSS PV finalizer is what deletion must release
    assert len(cr["metadata"]["annotations"]["t2i.dev/last-handled-configuration"]) < 200
    kubectl("delete", "t2i", "big", "-n", ns, "--wait=true", "--timeout=90s")
    assert kubectl.get("t2i", "big", ns) is None


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (
            {"affinity": {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [{}] * 5}}}},
            f"spec.affinity.nodeAffinity.{REQUIRED}.nodeSelectorTerms",
        ),
        (
            {"tolerations": [{"key": "k", "operator": "Exists"}] * 17},
            "spec.tolerations",
        ),
        (
            {"securityContext": {"capabilities": {"add": ["X"] * 33}}},
            "spec.securityContext.capabilities.add",
        ),
        (
            {"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
            "spec.strategy",
        ),
    ],
    ids=["affinity-terms", "tolerations", "capabilities", "strategy"],
)
def test_every_list_in_the_spec_is_bounded_at_admission(kubectl, ns, patch, field):
    """Item 7: the pass-through objects are typed now, so an oversized one is refused by the
    API server naming the field, before anything is stored."""
    proc = kubectl.run("create", "-f", "-", stdin=json.dumps(t2i("huge", ns, **patch)), check=False)
    assert proc.returncode != 0, "accepted"
    assert field in proc.stderr, proc.stderr
    assert kubectl.get("t2i", "huge", ns) is None


def test_a_500_for_an_unconvertible_value_is_a_rejection_naming_the_field(kubectl, namespace):
    """Item 11: the API server's 500 for a value it cannot convert (here a string port, which
    the CRD's typed schema now refuses before it reaches a child) is the spec's fault, not the
    cluster's: ApplyRejected with the server's message, which names the field."""
    config = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kubectl.kubeconfig), client_configuration=config)
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "unconvertible", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {
                    "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "abc"}]}]
                },
            },
        },
    }
    with pytest.raises(ApiException) as refused:
        Kube(config).apply(bad, manager="t2i-e2e")
    assert refused.value.status == 500
    problem = reconcile.apply_problem(refused.value)
    assert problem is not None and problem.reason == "ApplyRejected"
    assert "containerPort" in problem.message


def test_a_pod_on_a_deleted_tdx_node_is_reported_lost_at_once(kubectl, ns):
    """Item 11: a deleted node's pods keep their Ready status until the pod garbage collector
    removes them; the operator sees the node go and says so (Degraded NodeLost + an Event)."""
    node = unique("tdx-lost")
    kubectl.apply(
        localcluster.node(node, {**localcluster.NODES["tdx-node-0"], "t2i-e2e/lost": node})
    )
    try:
        kubectl.apply(t2i("sd", ns, placement={"pool": "TDX"}, nodeSelector={"t2i-e2e/lost": node}))
        kubectl.wait_ready("sd", ns)
        kubectl("delete", "node", node)
        cr = kubectl.wait_condition("sd", ns, "Degraded", reason="NodeLost", timeout=30)
        assert condition(cr, "Ready")["status"] == "False"
        assert node in condition(cr, "Degraded")["message"]
        events = wait_for(
            lambda: [
                e
                for e in kubectl.items("events", ns)
                if e.get("reason") == "NodeLost" and e["involvedObject"]["name"] == "sd"
            ],
            "a NodeLost Warning Event on the service",
            timeout=30,
        )
        assert events[0]["type"] == "Warning" and node in events[0]["message"]
    finally:
        kubectl.run("delete", "node", node, "--ignore-not-found", check=False)
