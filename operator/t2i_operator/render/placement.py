"""Node-pool placement: the pool's REQUIRED node affinity, merged with the user's own affinity.

A confidential service must be *required* to land on TDX nodes — a preference would let the
scheduler fall back to ordinary nodes silently. The ordinary g8i pool is the g8i instance types
minus the TDX nodes, so confidential capacity is not consumed by ordinary services.
"""

from __future__ import annotations

import copy
from typing import Any

from t2i_operator.spec import Placement

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def pool_expressions(placement: Placement) -> list[dict[str, Any]]:
    tdx = placement.tdxNodeLabel
    if placement.pool == "TDX":
        return [{"key": tdx.key, "operator": "In", "values": [tdx.value]}]
    if placement.pool == "G8i":
        return [
            {
                "key": INSTANCE_TYPE_LABEL,
                "operator": "In",
                "values": list(placement.g8iInstanceTypes),
            },
            {"key": tdx.key, "operator": "NotIn", "values": [tdx.value]},
        ]
    return []


def merged_affinity(placement: Placement, user_affinity: dict[str, Any]) -> dict[str, Any]:
    """AND the pool rule into every one of the user's required node-selector terms.

    Terms are ORed by the scheduler, expressions within a term ANDed, so appending the pool's
    expressions to each term keeps the user's alternatives and still forces the pool.
    """
    affinity = copy.deepcopy(user_affinity)
    expressions = pool_expressions(placement)
    if not expressions:
        return affinity
    node_affinity = affinity.setdefault("nodeAffinity", {})
    terms = (node_affinity.get(REQUIRED) or {}).get("nodeSelectorTerms") or [{}]
    node_affinity[REQUIRED] = {
        "nodeSelectorTerms": [
            {**term, "matchExpressions": [*term.get("matchExpressions", []), *expressions]}
            for term in terms
        ]
    }
    return affinity
