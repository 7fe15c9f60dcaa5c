"""PURE: can any node of the chosen pool hold one pod of this size? → the NodesFit condition.

A node is in the pool when it satisfies the pod's REQUIRED node rules as rendered (the pool's
expressions ANDed into the user's affinity terms, plus spec.nodeSelector) and is not cordoned.
It fits when its allocatable cpu and memory are at least the pod's requests (requests default
to limits, as the API server does). Other pods' requests and taints are not counted: this
answers "can this size ever run here", not "is there room right now" (that is the scheduler's
PodScheduled condition, which status already reports).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from t2i_operator.quantities import quantity_value
from t2i_operator.render.placement import REQUIRED, merged_affinity
from t2i_operator.spec import Spec
from t2i_operator.status import Cond

CONDITION = "NodesFit"
GI = Decimal(2**30)


def _requirement_met(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and values:
        try:
            have, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def required_terms(spec: Spec) -> list[dict[str, Any]]:
    """The pod's required node-selector terms as rendered (pool rule ANDed into each)."""
    affinity = merged_affinity(spec.placement, spec.affinity)
    return ((affinity.get("nodeAffinity") or {}).get(REQUIRED) or {}).get("nodeSelectorTerms") or []


def in_pool(spec: Spec, node: dict[str, Any], terms: list[dict[str, Any]] | None = None) -> bool:
    meta, nspec = node.get("metadata") or {}, node.get("spec") or {}
    labels = meta.get("labels") or {}
    if nspec.get("unschedulable"):
        return False
    if any(labels.get(k) != v for k, v in spec.nodeSelector.items()):
        return False
    terms = required_terms(spec) if terms is None else terms
    if not terms:
        return True
    return any(
        all(_requirement_met(e, labels) for e in term.get("matchExpressions") or [])
        for term in terms
    )


def pod_requests(spec: Spec) -> dict[str, Decimal]:
    requests = spec.resources.get("requests") or {}
    limits = spec.resources.get("limits") or {}
    out = {}
    for name in ("cpu", "memory"):
        value = quantity_value(requests.get(name, limits.get(name)))
        if value is not None:
            out[name] = value
    return out


def _fits(node: dict[str, Any], wants: dict[str, Decimal]) -> bool:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    for name, want in wants.items():
        have = quantity_value(allocatable.get(name, 0))
        if have is None or have < want:
            return False
    return True


def _show(wants: dict[str, Decimal]) -> str:
    parts = []
    if "cpu" in wants:
        parts.append(f"cpu {wants['cpu'].normalize():f}")
    if "memory" in wants:
        parts.append(f"memory {(wants['memory'] / GI).quantize(Decimal('0.1')).normalize():f}Gi")
    return ", ".join(parts) or "nothing"


def _allocatable(node: dict[str, Any]) -> str:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    wants = {k: v for k in ("cpu", "memory") if (v := quantity_value(alloc.get(k, 0))) is not None}
    return f"{node['metadata']['name']} ({_show(wants)})"


def nodes_fit(spec: Spec, nodes: list[dict[str, Any]]) -> Cond:
    """True/Fits, False/NoNodesInPool or False/NoNodesFit, with a message naming the numbers."""
    terms = required_terms(spec)
    pool = [n for n in nodes if in_pool(spec, n, terms)]
    wants = pod_requests(spec)
    where = f"pool {spec.placement.pool}" + (f" (size {spec.size})" if spec.size else "")
    if not pool:
        return Cond(
            "False",
            "NoNodesInPool",
            f"no schedulable node matches {where} and spec.nodeSelector/spec.affinity",
        )
    fitting = [n for n in pool if _fits(n, wants)]
    if not fitting:
        largest = sorted(pool, key=lambda n: n["metadata"]["name"])[:5]
        return Cond(
            "False",
            "NoNodesFit",
            f"none of the {len(pool)} nodes in {where} has allocatable {_show(wants)} "
            f"(spec.size / spec.resources.requests); nodes: "
            + ", ".join(_allocatable(n) for n in largest),
        )
    return Cond(
        "True", "Fits", f"{len(fitting)} of {len(pool)} nodes in {where} fit {_show(wants)}"
    )
