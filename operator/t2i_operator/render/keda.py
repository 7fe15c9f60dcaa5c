"""PURE: the KEDA ScaledObject for `spec.autoscaling.mode: QueueDepth` (issue 19).

The ScaledObject targets the Deployment (not the custom resource's scale subresource): KEDA then
owns `Deployment.spec.replicas` exactly as the CPU-mode HPA does, render/deployment.py omits the
field in both modes, and scaling to zero is KEDA's own well-trodden path (its HPA cannot go below
one; KEDA's operator does 1 ↔ 0 itself). The CR's `spec.replicas` stays the user's fixed count,
used only when autoscaling is off or KEDA is not installed.

Triggers: Prometheus on the server's `t2i_queue_depth_images` (AverageValue: the target is per
replica), optionally `t2i_requests_in_flight`, and an optional cron window.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from t2i_operator.render.common import Owner, namespaced_meta
from t2i_operator.spec import Spec

API_VERSION = "keda.sh/v1alpha1"
KIND = "ScaledObject"
QUEUE_METRIC = "t2i_queue_depth_images"
IN_FLIGHT_METRIC = "t2i_requests_in_flight"


def hpa_name(owner: Owner) -> str:
    """The HPA KEDA creates for the ScaledObject (named here, so status can read it)."""
    return f"keda-hpa-{owner.name}"


def default_query(metric: str, owner: Owner) -> str:
    """Sum of `metric` over the Service's pods. `namespace` and `service` are the labels a
    Prometheus Operator ServiceMonitor attaches, and the ones docs/operations.md's scrape config
    relabels to."""
    return f'sum({metric}{{namespace="{owner.namespace}",service="{owner.name}"}})'


def _prometheus(name: str, address: str, query: str, threshold: int) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "name": name,
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": address,
            "query": query,
            "threshold": str(threshold),
            # A queue of 0 is "idle", not an error (no series yet right after a rollout).
            "ignoreNullValues": "true",
        },
    }


def triggers(spec: Spec, owner: Owner) -> list[dict[str, Any]]:
    auto = spec.autoscaling
    qd = auto.queueDepth
    out = [
        _prometheus(
            "queue-depth",
            qd.prometheusServerAddress,
            qd.query or default_query(QUEUE_METRIC, owner),
            qd.targetPerReplica,
        )
    ]
    if qd.inFlightPerReplica:
        out.append(
            _prometheus(
                "requests-in-flight",
                qd.prometheusServerAddress,
                default_query(IN_FLIGHT_METRIC, owner),
                qd.inFlightPerReplica,
            )
        )
    if auto.schedule is not None:
        sched = auto.schedule
        out.append(
            {
                "type": "cron",
                "name": "schedule",
                "metadata": {
                    "timezone": sched.timezone,
                    "start": sched.start,
                    "end": sched.end,
                    "desiredReplicas": str(sched.replicas),
                },
            }
        )
    return out


def render_scaled_object(spec: Spec, owner: Owner) -> dict[str, Any]:
    auto = spec.autoscaling
    body: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner.name},
        "minReplicaCount": auto.minReplicas,
        "maxReplicaCount": auto.maxReplicas,
        "triggers": triggers(spec, owner),
    }
    hpa_config: dict[str, Any] = {"name": hpa_name(owner)}
    if auto.scaleDownStabilizationSeconds is not None:
        window = auto.scaleDownStabilizationSeconds
        hpa_config["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": window}}
        body["cooldownPeriod"] = window  # the 1 → 0 step waits as long as N → N-1 does
    body["advanced"] = {"horizontalPodAutoscalerConfig": hpa_config}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": namespaced_meta(owner, owner.name),
        "spec": body,
    }


def without_keda(spec: Spec) -> Spec:
    """The spec to run while KEDA is not installed: a fixed `spec.replicas`, no autoscaler
    (status says so with AutoscalerUnavailable/KEDANotInstalled)."""
    return dataclasses.replace(
        spec, autoscaling=dataclasses.replace(spec.autoscaling, enabled=False)
    )
