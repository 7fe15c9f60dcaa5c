"""Autoscaling modes (issue 19): QueueDepth renders a KEDA ScaledObject instead of the HPA; the
Deployment's replicas belong to the autoscaler; without KEDA the fixed spec.replicas runs and
status says why; scaled to zero is stated plainly."""

import pytest
from t2i_operator import spec
from t2i_operator.render import render_all
from t2i_operator.render.keda import default_query, render_scaled_object, without_keda
from t2i_operator.status import KedaView, compute_status
from t2i_operator.validate import SpecError, check
from tutorial import CREDENTIALS, OWNER, by_kind

PROM = "http://prometheus.monitoring.svc:9090"
QUEUE = {"enabled": True, "mode": "QueueDepth", "queueDepth": {"prometheusServerAddress": PROM}}


def kinds_for(auto, **raw):
    return by_kind(render_all(spec.parse({"autoscaling": auto, **raw}), OWNER, CREDENTIALS))


def test_queue_depth_renders_a_scaled_object_on_the_deployment_and_no_hpa():
    kinds = kinds_for(QUEUE, replicas=4)
    assert "HorizontalPodAutoscaler" not in kinds
    assert "replicas" not in kinds["Deployment"]["spec"]  # KEDA owns the count
    so = kinds["ScaledObject"]
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": OWNER.name,
    }
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 3)
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "AverageValue"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == PROM
    assert meta["threshold"] == "2"
    assert meta["query"] == (
        f'sum(t2i_queue_depth_images{{namespace="{OWNER.namespace}",service="{OWNER.name}"}})'
    )
    # Every metadata value is a string (KEDA's trigger metadata is map[string]string).
    assert all(isinstance(v, str) for t in so["spec"]["triggers"] for v in t["metadata"].values())


def test_in_flight_schedule_zero_and_stabilisation():
    auto = {
        **QUEUE,
        "minReplicas": 0,
        "maxReplicas": 5,
        "scaleDownStabilizationSeconds": 30,
        "queueDepth": {
            "prometheusServerAddress": PROM,
            "targetPerReplica": 3,
            "inFlightPerReplica": 4,
            "query": "sum(my_queue)",
        },
        "schedule": {"timezone": "Europe/Berlin", "replicas": 2},
    }
    so = render_scaled_object(spec.parse({"autoscaling": auto}), OWNER)
    assert so["spec"]["minReplicaCount"] == 0
    assert so["spec"]["cooldownPeriod"] == 30
    hpa_config = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
    assert hpa_config["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 30}}
    by_name = {t["name"]: t for t in so["spec"]["triggers"]}
    assert by_name["queue-depth"]["metadata"]["query"] == "sum(my_queue)"
    assert by_name["queue-depth"]["metadata"]["threshold"] == "3"
    assert by_name["requests-in-flight"]["metadata"]["query"] == default_query(
        "t2i_requests_in_flight", OWNER
    )
    assert by_name["requests-in-flight"]["metadata"]["threshold"] == "4"
    assert by_name["schedule"] == {
        "type": "cron",
        "name": "schedule",
        "metadata": {
            "timezone": "Europe/Berlin",
            "start": "0 8 * * 1-5",
            "end": "0 18 * * 1-5",
            "desiredReplicas": "2",
        },
    }


def test_cpu_mode_is_unchanged_and_gains_only_the_optional_window():
    kinds = kinds_for({"enabled": True})
    assert "ScaledObject" not in kinds
    assert "behavior" not in kinds["HorizontalPodAutoscaler"]["spec"]
    kinds = kinds_for({"enabled": True, "scaleDownStabilizationSeconds": 60})
    assert kinds["HorizontalPodAutoscaler"]["spec"]["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 60}
    }


def test_without_keda_runs_the_fixed_replicas():
    parsed = spec.parse({"autoscaling": QUEUE, "replicas": 2})
    kinds = by_kind(render_all(without_keda(parsed), OWNER, CREDENTIALS))
    # two fixed replicas: a PodDisruptionBudget, but neither a ScaledObject nor an HPA
    assert set(kinds) == {"Deployment", "Service", "PodDisruptionBudget"}
    assert kinds["Deployment"]["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("auto", "field"),
    [
        ({"enabled": True, "mode": "QueueDepth"}, "prometheusServerAddress"),
        ({"enabled": True, "minReplicas": 0}, "minReplicas: 0"),
        ({"enabled": True, "schedule": {}}, "schedule"),
    ],
)
def test_invalid_autoscaling_names_the_field(auto, field):
    with pytest.raises(SpecError, match=field):
        check(spec.parse({"autoscaling": auto}))


def deployment(replicas):
    return {
        "metadata": {"name": OWNER.name, "generation": 1},
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                   "availableReplicas": replicas, "readyReplicas": replicas},
    }  # fmt: skip


def status_of(replicas, keda, auto=QUEUE):
    return compute_status(
        spec=spec.parse({"autoscaling": auto}),
        owner=OWNER,
        generation=1,
        deployment=deployment(replicas),
        pods=[],
        hpa=None,
        problem=None,
        previous=None,
        now="2026-12-03T01:00:00Z",
        keda=keda,
    )


def conds(status):
    return {c["type"]: c for c in status["conditions"]}


def scaled_object(ready="True", active="False", message="Scaling is not performed"):
    return {
        "metadata": {"name": OWNER.name},
        "status": {
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "ScaledObjectReady", "message": "ok"},
                {"type": "Active", "status": active, "reason": "ScalerNotActive",
                 "message": message},
            ]
        },
    }  # fmt: skip


def test_status_says_keda_is_missing_and_what_runs_meanwhile():
    s = status_of(1, KedaView(installed=False))
    c = conds(s)["AutoscalerUnavailable"]
    assert (c["status"], c["reason"]) == ("True", "KEDANotInstalled")
    assert "install KEDA" in c["message"] and "spec.replicas (1)" in c["message"]
    assert s["autoscaler"] == "KEDANotInstalled"
    assert conds(s)["Ready"]["status"] == "True"  # the fixed replica still serves


def test_status_says_plainly_when_keda_scaled_to_zero_and_why():
    s = status_of(0, KedaView(installed=True, scaled_object=scaled_object()))
    ready = conds(s)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ScaledToZero")
    assert "scaled to zero by KEDA ScaledObject" in ready["message"]
    assert "Scaling is not performed" in ready["message"]
    assert s["autoscaler"] == "KEDA: scaled to zero"
    assert conds(s)["AutoscalerUnavailable"]["status"] == "False"


def test_status_reports_a_failing_scaled_object():
    so = scaled_object(ready="False")
    s = status_of(1, KedaView(installed=True, scaled_object=so))
    c = conds(s)["AutoscalerUnavailable"]
    assert (c["status"], c["reason"]) == ("True", "ScaledObjectNotReady")
    assert s["autoscaler"] == "KEDA"


def test_other_modes_carry_no_keda_condition():
    s = status_of(2, None, auto={"enabled": True})
    assert "AutoscalerUnavailable" not in conds(s)
    assert s["autoscaler"] == "HPA"
    assert status_of(2, None, auto={})["autoscaler"] == "Off"
