"""The PodDisruptionBudget (policy/v1): a node drain never takes every replica at once.

Rendered only while more than one replica is wanted (spec.replicas, or autoscaling.minReplicas
with the HPA on): with one replica a budget of maxUnavailable 1 protects nothing, and
minAvailable 1 would block every drain. Pruned (apply.prune) when that is no longer so.
"""

from __future__ import annotations

from typing import Any

from t2i_operator.render.common import Owner, namespaced_meta, selector_labels
from t2i_operator.spec import Spec


def wanted_replicas(spec: Spec) -> int:
    """The replica floor: the HPA's minimum while it owns the count, else spec.replicas."""
    return spec.autoscaling.minReplicas if spec.autoscaling.enabled else spec.replicas


def pdb_wanted(spec: Spec) -> bool:
    return spec.podDisruptionBudget.enabled and wanted_replicas(spec) > 1


def render_pdb(spec: Spec, owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": namespaced_meta(owner, owner.name),
        "spec": {
            "maxUnavailable": spec.podDisruptionBudget.maxUnavailable,
            "selector": {"matchLabels": selector_labels(owner)},
            # A crash-looping (not Ready) pod must not block a node drain.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
