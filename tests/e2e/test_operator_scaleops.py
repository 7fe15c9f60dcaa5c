"""Serving at scale (issue 18 items 2, 3, 5) on the local control plane, operator under the
shipped RBAC: pod knobs refused by CEL or rendered, the PodDisruptionBudget created, re-created
and pruned, and sizing presets with the NodesFit condition reacting to a node that appears."""

from __future__ import annotations

import localcluster  # hack/cluster, on sys.path by conftest
import pytest
import yaml
from operator_harness import condition, t2i, unique, wait_for

pytestmark = pytest.mark.e2e

INSTANCE_TYPE = "node.kubernetes.io/instance-type"


def dry_run(kubectl, body: dict):
    return kubectl.run(
        "create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(body), check=False
    )


VOL = {"volumes": [{"name": "cfg", "configMap": {"name": "t2i-cfg"}}]}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"container": {"env": [{"name": "T2I_PORT", "value": "1"}]}}, "spec.container.env"),
        ({"container": {"env": [{"name": "OMP_NUM_THREADS", "value": "1"}]}}, "spec.container.env"),
        ({"container": {"env": [{"name": "A"}]}}, "spec.container.env[]"),
        (
            {"container": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}},
            "spec.container.env[].name must be unique",
        ),
        ({"pod": {"volumes": [{"name": "output-volume", "emptyDir": {}}]}}, "spec.pod.volumes"),
        (
            {"container": {"volumeMounts": [{"name": "cfg", "mountPath": "/etc/x"}]}},
            "spec.container.volumeMounts[].name",
        ),
        (
            {
                "pod": VOL,
                "container": {"volumeMounts": [{"name": "cfg", "mountPath": "/models/a"}]},
            },
            "spec.container.volumeMounts[].mountPath",
        ),
        (
            {"pod": VOL, "container": {"volumeMounts": [{"name": "cfg", "mountPath": "/tmp"}]}},
            "spec.container.volumeMounts[].mountPath",
        ),
        ({"pod": {"labels": {"app.kubernetes.io/name": "x"}}}, "spec.pod.labels"),
        ({"pod": {"labels": {"bad key!": "x"}}}, "spec.pod.labels"),
        ({"podDisruptionBudget": {"maxUnavailable": 0}}, "spec.podDisruptionBudget.maxUnavailable"),
        ({"podDisruptionBudget": {"maxUnavailable": "150%"}}, "spec.podDisruptionBudget"),
        ({"size": "ecs.g8i.2xlarge"}, "spec.size"),
        (
            {"pod": {"volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}]}},
            "exactly one of configMap, secret, emptyDir",
        ),
        ({"pod": {"volumes": [{"name": "v", "hostPath": {"path": "/"}}]}}, "hostPath"),
        (
            {"container": {"env": [{"name": "A", "value": "x" * 257}]}},
            "spec.container.env[0].value",
        ),
        ({"container": {"probes": {"liveness": {"periodSeconds": 0}}}}, "periodSeconds"),
        ({"pod": {"topologySpreadConstraints": [{"maxSkew": 1}]}}, "topologyKey"),
    ],
)
def test_schema_and_cel_refuse_with_the_field_named(kubectl, ns, spec, field):
    r = dry_run(kubectl, t2i("sd", ns, **spec))
    assert r.returncode != 0, spec
    assert field in r.stderr, r.stderr


def test_a_full_knob_spec_is_accepted(kubectl, ns):
    body = t2i(
        "sd",
        ns,
        size="ecs.g8i.8xlarge",
        podDisruptionBudget={"maxUnavailable": "50%"},
        pod={
            **VOL,
            "labels": {"team": "vision"},
            "annotations": {"example.com/x": "vision"},
            "serviceAccountName": "t2i-rrsa",
            "priorityClassName": "high",
            "runtimeClassName": "runc",
            "topologySpreadConstraints": [{"topologyKey": "kubernetes.io/hostname", "maxSkew": 1}],
        },
        container={
            "allowOperatorEnvOverride": True,
            "env": [
                {"name": "T2I_PORT", "value": "5000"},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            ],
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/t2i", "readOnly": True}],
            "probes": {"startup": {"failureThreshold": 400}},
        },
    )
    r = dry_run(kubectl, body)
    assert r.returncode == 0, r.stderr
    text = kubectl("explain", "t2i.spec.container.allowOperatorEnvOverride")
    assert "OMP_NUM_THREADS" in text


def test_pod_knobs_and_cr_labels_reach_the_deployment(kubectl, ns):
    kubectl("create", "serviceaccount", "t2i-rrsa", "-n", ns)
    body = t2i(
        "sd",
        ns,
        pod={
            **VOL,
            "labels": {"team": "vision"},
            "annotations": {"example.com/x": "vision"},
            "serviceAccountName": "t2i-rrsa",
            "topologySpreadConstraints": [{"topologyKey": "kubernetes.io/hostname"}],
        },
        container={
            "env": [{"name": "T2I_LOG_PROMPTS", "value": "false"}],
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/t2i"}],
            "probes": {"readiness": {"periodSeconds": 2}},
        },
    )
    body["metadata"]["labels"] = {"cost-center": "42", "argocd.argoproj.io/instance": "app"}
    kubectl.apply(body)
    dep = wait_for(lambda: kubectl.get("deployment", "sd", ns), "the Deployment")
    template = dep["spec"]["template"]
    pod, c = template["spec"], template["spec"]["containers"][0]
    assert pod["serviceAccountName"] == "t2i-rrsa"
    spread = pod["topologySpreadConstraints"][0]
    assert (spread["maxSkew"], spread["whenUnsatisfiable"]) == (1, "DoNotSchedule")
    assert spread["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "t2i-server",
        "app.kubernetes.io/instance": "sd",
    }
    assert {"name": "cfg", "configMap": {"name": "t2i-cfg", "defaultMode": 420}} in pod["volumes"]
    assert {"name": "cfg", "mountPath": "/etc/t2i"} in c["volumeMounts"]
    assert {"name": "T2I_LOG_PROMPTS", "value": "false"} in c["env"]
    assert c["readinessProbe"]["periodSeconds"] == 2
    assert template["metadata"]["labels"]["team"] == "vision"
    assert template["metadata"]["annotations"] == {"example.com/x": "vision"}
    service = wait_for(lambda: kubectl.get("service", "sd", ns), "the Service")
    for obj in (dep, service, {"metadata": template["metadata"]}):
        assert obj["metadata"]["labels"]["cost-center"] == "42"
        assert "argocd.argoproj.io/instance" not in obj["metadata"]["labels"]
    # a CR label removed is removed from the children too
    body["metadata"]["labels"] = {}
    kubectl.apply(body)
    wait_for(
        lambda: "cost-center" not in kubectl.get("deployment", "sd", ns)["metadata"]["labels"],
        "the removed CR label gone from the Deployment",
    )


def test_pdb_follows_the_replica_count(kubectl, ns):
    kubectl.apply(t2i("sd", ns, replicas=2))
    pdb = wait_for(lambda: kubectl.get("pdb", "sd", ns), "the PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "sd"
    assert pdb["metadata"]["ownerReferences"][0]["kind"] == "Text2ImageService"
    # deleted by hand → put back (watched like the other children)
    uid = pdb["metadata"]["uid"]
    kubectl("delete", "pdb", "sd", "-n", ns)
    wait_for(
        lambda: (p := kubectl.get("pdb", "sd", ns)) and p["metadata"]["uid"] != uid,
        "the PodDisruptionBudget re-created",
    )
    # the HPA's minimum decides while it is on
    auto = {"enabled": True, "minReplicas": 1, "maxReplicas": 3}
    kubectl.apply(t2i("sd", ns, replicas=2, autoscaling=auto))
    wait_for(lambda: kubectl.get("pdb", "sd", ns) is None, "the PodDisruptionBudget pruned")
    kubectl.apply(t2i("sd", ns, replicas=1, autoscaling={**auto, "minReplicas": 2}))
    wait_for(lambda: kubectl.get("pdb", "sd", ns), "the PodDisruptionBudget back at minReplicas 2")
    kubectl.apply(t2i("sd", ns, replicas=1))
    wait_for(lambda: kubectl.get("pdb", "sd", ns) is None, "the PodDisruptionBudget pruned at 1")


def big_node(name: str) -> dict:
    return localcluster.node(name, {INSTANCE_TYPE: "ecs.g8i.48xlarge"}, cpu="192", memory="768Gi")


def test_size_preset_status_and_nodes_fit(kubectl, ns):
    body = t2i("sd", ns, size="ecs.g8i.16xlarge")
    del body["spec"]["resources"]  # the preset's, not the harness's small ones
    kubectl.apply(body)
    cr = wait_for(
        lambda: (c := kubectl.get("t2i", "sd", ns)) and condition(c, "NodesFit") and c,
        "the NodesFit condition",
    )
    assert condition(cr, "NodesFit")["reason"] == "Fits", condition(cr, "NodesFit")
    assert cr["status"]["size"] == "ecs.g8i.16xlarge"
    assert cr["status"]["sizing"] == "cpu 56/64 memory 48Gi/56Gi maxBatch 16 threads 64"
    wide = kubectl("get", "t2i", "sd", "-n", ns, "-o", "wide")
    assert "SIZE" in wide and "ecs.g8i.16xlarge" in wide and "Fits" in wide
    dep = kubectl.get("deployment", "sd", ns)
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "56",
        "memory": "48Gi",
    }

    # 168 CPUs requested: no fake node (64 allocatable) can hold it
    body["spec"]["size"] = "ecs.g8i.48xlarge"
    kubectl.apply(body)
    cr = kubectl.wait_condition("sd", ns, "NodesFit", reason="NoNodesFit")
    assert "cpu 168" in condition(cr, "NodesFit")["message"]
    events = wait_for(
        lambda: [e for e in kubectl.items("events", ns) if e.get("reason") == "NoNodesFit"],
        "a NoNodesFit Warning Event",
    )
    assert events[0]["type"] == "Warning"
    assert events[0]["involvedObject"]["name"] == "sd"

    # a node of that size joins the pool: the node watch re-checks, no CR edit needed
    name = unique("g8i-48x")
    kubectl.apply(big_node(name))
    try:
        wait_for(
            lambda: condition(kubectl.get("t2i", "sd", ns), "NodesFit").get("reason") == "Fits",
            "Fits after the node joined",
            timeout=120,
        )
    finally:
        kubectl.run("delete", "node", name, "--wait=false", check=False)
