"""The HorizontalPodAutoscaler (autoscaling/v2) for the tutorial's `autoscaling` block."""

from __future__ import annotations

from typing import Any

from t2i_operator.render.common import Owner, namespaced_meta
from t2i_operator.spec import Spec


def _utilization(resource: str, target: int) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {
            "name": resource,
            "target": {"type": "Utilization", "averageUtilization": target},
        },
    }


def render_hpa(spec: Spec, owner: Owner) -> dict[str, Any]:
    auto = spec.autoscaling
    metrics = []
    if auto.targetCPUUtilizationPercentage:
        metrics.append(_utilization("cpu", auto.targetCPUUtilizationPercentage))
    if auto.targetMemoryUtilizationPercentage:
        metrics.append(_utilization("memory", auto.targetMemoryUtilizationPercentage))
    body: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner.name},
        "minReplicas": auto.minReplicas,
        "maxReplicas": auto.maxReplicas,
    }
    if metrics:
        body["metrics"] = metrics
    if auto.scaleDownStabilizationSeconds is not None:
        window = auto.scaleDownStabilizationSeconds
        body["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": window}}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": namespaced_meta(owner, owner.name),
        "spec": body,
    }
