"""PURE: what the CRD schema cannot say about a spec, checked before anything is rendered.

The schema lets some pass-through objects (affinity, tolerations) and int-or-string quantities
through with shapes the renderer cannot use. Each check names the spec field, so the status and
the Warning Event tell the user exactly what to fix; nothing is applied for such a spec.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from t2i_operator.render.common import Owner, operator_labels
from t2i_operator.render.deployment import (
    MODEL_VOLUME,
    OUTPUT_VOLUME,
    TSM_MOUNT_PATH,
    TSM_VOLUME,
    operator_env_names,
)
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


# --- Pod knobs (issue 18 item 2): the CRD's CEL rules again, for objects stored before them ---

OPERATOR_VOLUMES = frozenset({OUTPUT_VOLUME, MODEL_VOLUME, TSM_VOLUME})


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path.rstrip("/") == root or path.startswith(root + "/")


def _check_env(spec: Spec) -> None:
    owned = set(operator_env_names())
    for i, item in enumerate(spec.container.env):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise SpecError(f"spec.container.env[{i}] must be an object with a name")
        if item["name"] in owned and not spec.container.allowOperatorEnvOverride:
            raise SpecError(
                f"spec.container.env[{i}].name: {item['name']} is set by the operator; "
                "set spec.container.allowOperatorEnvOverride to true to replace it"
            )


def _check_volumes(spec: Spec) -> None:
    names = []
    for i, volume in enumerate(spec.pod.volumes):
        if not isinstance(volume, dict) or not isinstance(volume.get("name"), str):
            raise SpecError(f"spec.pod.volumes[{i}] must be an object with a name")
        if volume["name"] in OPERATOR_VOLUMES:
            raise SpecError(
                f"spec.pod.volumes[{i}].name: {volume['name']} is one of the operator's volumes"
            )
        names.append(volume["name"])
    for i, mount in enumerate(spec.container.volumeMounts):
        if not isinstance(mount, dict) or not isinstance(mount.get("mountPath"), str):
            raise SpecError(f"spec.container.volumeMounts[{i}] must be an object with a mountPath")
        if mount.get("name") not in names:
            raise SpecError(
                f"spec.container.volumeMounts[{i}].name must name a volume of spec.pod.volumes"
            )
        roots = [
            (spec.outputDirPath, "spec.outputDirPath"),
            (spec.model.mountPath, "spec.model.mountPath"),
        ]
        if spec.placement.mounts_configfs_tsm:
            roots.append((TSM_MOUNT_PATH, "spec.placement.tdxEvidence.configfsTsm"))
        for root, field in roots:
            if _under(mount["mountPath"], root) or _under(root, mount["mountPath"]):
                raise SpecError(
                    f"spec.container.volumeMounts[{i}].mountPath must not be, contain or lie "
                    f"under {field} ({root})"
                )


def _check_tdx_evidence(spec: Spec) -> None:
    """The schema's CEL rule again, for objects stored before it existed."""
    if spec.placement.tdxEvidence.configfsTsm and spec.placement.pool != "TDX":
        raise SpecError(
            "spec.placement.tdxEvidence.configfsTsm needs spec.placement.pool TDX "
            "(only TD nodes have configfs-tsm)"
        )


def _check_pod(spec: Spec) -> None:
    owned = operator_labels(Owner("x", "x", "x"))
    for key in spec.pod.labels:
        if key in owned:
            raise SpecError(f"spec.pod.labels: {key} is set by the operator (the pod selector)")
    for i, item in enumerate(spec.pod.topologySpreadConstraints):
        if not isinstance(item, dict):
            raise SpecError(f"spec.pod.topologySpreadConstraints[{i}] must be an object")


def _check_image_storage(spec: Spec) -> None:
    """The schema's CEL rule again, for objects stored before it existed."""
    storage = spec.imageStorage
    if (storage.type == "PVC") != (storage.pvcClaimName is not None):
        raise SpecError(
            "spec.imageStorage.pvc.claimName must be set when spec.imageStorage.type is PVC, "
            "and only then"
        )


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
    _check_env(spec)
    _check_volumes(spec)
    _check_pod(spec)
    _check_tdx_evidence(spec)
    _check_model(spec)
    _check_image_storage(spec)
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
