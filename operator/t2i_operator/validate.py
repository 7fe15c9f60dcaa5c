"""PURE: what the CRD schema cannot say about a spec, checked before anything is rendered.

The schema lets some pass-through objects (affinity, tolerations) and int-or-string quantities
through with shapes the renderer cannot use. Each check names the spec field, so the status and
the Warning Event tell the user exactly what to fix; nothing is applied for such a spec.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from t2i_operator.spec import Spec

# The API server's resource.Quantity grammar (also the CRD's pattern for resources).
QUANTITY_RE = re.compile(
    r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


class SpecError(ValueError):
    """A spec the API server accepted but the operator cannot render; names the field."""


def quantity_ok(value: Any) -> bool:
    """A finite, non-negative Kubernetes quantity (ints included; bools are not quantities)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    if not isinstance(value, str) or not QUANTITY_RE.match(value):
        return False
    try:
        return Decimal(re.sub(r"([KMGTPE]i|[numkMGTPE])$", "", value)) >= 0
    except InvalidOperation:
        return False


def _check_resources(resources: dict[str, Any]) -> None:
    for section, values in resources.items():
        if not isinstance(values, dict):
            raise SpecError(f"spec.resources.{section} must be a map of quantities")
        for key, value in values.items():
            if not quantity_ok(value):
                raise SpecError(
                    f"spec.resources.{section}.{key}: {value!r} is not a non-negative quantity "
                    "(e.g. 2, 1500m, 4Gi)"
                )


def _check_affinity(affinity: dict[str, Any]) -> None:
    """The node-affinity path the pool rule is merged into must have the API's shape."""
    node = affinity.get("nodeAffinity")
    if node is None:
        return
    if not isinstance(node, dict):
        raise SpecError("spec.affinity.nodeAffinity must be an object (a core/v1 NodeAffinity)")
    required = node.get(REQUIRED)
    if required is None:
        return
    field = f"spec.affinity.nodeAffinity.{REQUIRED}"
    if not isinstance(required, dict):
        raise SpecError(f"{field} must be an object with nodeSelectorTerms")
    terms = required.get("nodeSelectorTerms")
    if terms is None:
        return
    if not isinstance(terms, list) or not all(isinstance(t, dict) for t in terms):
        raise SpecError(f"{field}.nodeSelectorTerms must be a list of objects")
    for i, term in enumerate(terms):
        exprs = term.get("matchExpressions")
        if exprs is not None and not isinstance(exprs, list):
            raise SpecError(f"{field}.nodeSelectorTerms[{i}].matchExpressions must be a list")


def _check_model(spec: Spec) -> None:
    """The schema's CEL rules again, for objects stored before a rule existed."""
    model = spec.model
    for source, present, field in (
        ("OSS", model.oss is not None, "spec.model.oss"),
        ("PVC", model.pvcClaimName is not None, "spec.model.pvc.claimName"),
        ("HostPath", model.hostPath is not None, "spec.model.hostPath"),
    ):
        if (model.source == source) != present:
            raise SpecError(
                f"{field} must be set when spec.model.source is {source}, and only then"
            )
    if model.oss is not None:
        for name in ("bucket", "endpoint"):
            if not getattr(model.oss, name):
                raise SpecError(f"spec.model.oss.{name} is required")
        if not model.oss.credentialsSecretRef.name:
            raise SpecError("spec.model.oss.credentialsSecretRef.name is required")


def _check_autoscaling(spec: Spec) -> None:
    """The schema's autoscaling CEL rules again (issue 19), for objects stored before them."""
    auto = spec.autoscaling
    if not auto.enabled:
        return
    if auto.mode == "QueueDepth" and not auto.queueDepth.prometheusServerAddress:
        raise SpecError(
            "spec.autoscaling.queueDepth.prometheusServerAddress is required when "
            "spec.autoscaling.mode is QueueDepth"
        )
    if auto.mode != "QueueDepth" and (auto.minReplicas == 0 or auto.schedule is not None):
        raise SpecError(
            "spec.autoscaling.minReplicas: 0 and spec.autoscaling.schedule need "
            "spec.autoscaling.mode: QueueDepth (KEDA); an HPA cannot scale to zero"
        )


def check(spec: Spec) -> None:
    """Raise SpecError naming the first field the renderer cannot use."""
    _check_model(spec)
    _check_autoscaling(spec)
    _check_resources(spec.resources)
    _check_affinity(spec.affinity)
    for i, toleration in enumerate(spec.tolerations):
        if not isinstance(toleration, dict):
            raise SpecError(f"spec.tolerations[{i}] must be an object (a core/v1 Toleration)")
    if not isinstance(spec.strategy, dict):
        raise SpecError("spec.strategy must be an object")
    if not isinstance(spec.securityContext, dict):
        raise SpecError("spec.securityContext must be an object")
