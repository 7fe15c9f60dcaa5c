"""Names, labels and owner references shared by every renderer (the design contract's table)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from t2i_operator.spec import API_GROUP, API_VERSION, KIND, OSS

APP_NAME = "t2i-server"
MANAGER = "t2i-operator"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_OWNER = "t2i.dev/owner"  # on the cluster-scoped PV, which cannot carry an ownerReference
LABEL_PVNAME = "alicloud-pvname"  # the tutorial's PVC selector label
PV_FINALIZER = "t2i.dev/pv-cleanup"
CONTAINER_PORT = 5000


@dataclass(frozen=True)
class Owner:
    """The custom resource children belong to."""

    name: str
    namespace: str
    uid: str
    # The CR's own metadata.labels, as (key, value) pairs: propagated to every child.
    labels: tuple[tuple[str, str], ...] = field(default=())

    @property
    def owner_label(self) -> str:
        """`<ns>.<name>` as a label value; hashed when it would exceed the 63-character limit."""
        return label_value(f"{self.namespace}.{self.name}")


def label_value(value: str) -> str:
    """`value` itself when it fits a label value (63 characters), else a prefix + its hash."""
    if len(value) <= 63:
        return value
    return f"{value[:50]}-{hashlib.sha256(value.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Credentials:
    """The user's AccessKey pair; repr hides the values so they never reach a log line."""

    access_key_id: str
    access_key_secret: str

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"


def selector_labels(owner: Owner) -> dict[str, str]:
    return {LABEL_INSTANCE: owner.name, LABEL_NAME: APP_NAME}


def selector_string(owner: Owner) -> str:
    """The serialized selector for the scale subresource (status.selector)."""
    return label_selector(selector_labels(owner))


def label_selector(match: dict[str, str]) -> str:
    """`k=v,...` (sorted) for a labelSelector query or a serialized selector."""
    return ",".join(f"{k}={v}" for k, v in sorted(match.items()))


# CR labels NOT copied to children: tools' own bookkeeping on the CR (kubectl's last-applied
# markers, kopf's, Argo CD's and Flux's tracking labels), which would make those tools treat the
# children as their own objects.
NOT_PROPAGATED_PREFIXES = (
    "kubectl.kubernetes.io/",
    "kopf.zalando.org/",
    "argocd.argoproj.io/",
    "kustomize.toolkit.fluxcd.io/",
    "helm.toolkit.fluxcd.io/",
)


def propagated_labels(owner: Owner) -> dict[str, str]:
    """The CR's labels every child (and the pod template) carries; operator labels win."""
    return {k: v for k, v in owner.labels if not k.startswith(NOT_PROPAGATED_PREFIXES)}


def operator_labels(owner: Owner) -> dict[str, str]:
    return {**selector_labels(owner), LABEL_MANAGED_BY: MANAGER}


def labels(owner: Owner) -> dict[str, str]:
    return {**propagated_labels(owner), **operator_labels(owner)}


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def namespaced_meta(owner: Owner, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner),
        "ownerReferences": [owner_reference(owner)],
    }


def credentials_secret_name(owner: Owner) -> str:
    return f"{owner.name}-oss-credentials"


def oss_volume_key(oss: OSS) -> str:
    """A short digest of everything a PV/PVC pair cannot change in place (a CSI source and a
    static claim are immutable). The pair is named by it, so changing the bucket, endpoint,
    path, mount options or capacity creates a new pair; the Deployment rolls over to it and the
    old pair is pruned, held by the API server's pvc/pv-protection until no pod uses it."""
    source = [oss.bucket, oss.endpoint, oss.path, oss.otherOpts, oss.capacity]
    return hashlib.sha256(json.dumps(source).encode()).hexdigest()[:8]


def pvc_name(owner: Owner, oss: OSS) -> str:
    return f"{owner.name}-models-{oss_volume_key(oss)}"


def pv_name(owner: Owner, oss: OSS) -> str:
    return f"{owner.namespace}-{owner.name}-models-{oss_volume_key(oss)}"


def pv_label(owner: Owner, oss: OSS) -> str:
    """The tutorial's `alicloud-pvname` label (PV name) — hashed beyond 63 characters."""
    return label_value(pv_name(owner, oss))
