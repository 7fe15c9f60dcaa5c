"""The e2e tests' names for the shared harness, plus what only the tests use (unique names,
small Text2ImageService bodies).

The cluster itself (admin kubeconfig, kubectl, fake kwok nodes) comes from the control-plane
fixtures in conftest.py. The kubectl runner, polling, the operator as a separate process under
its shipped RBAC and the audit-log reader live in hack/support.py (shared with hack/ scripts,
which must not import from tests/); they are re-exported here so existing imports keep working.
"""

from __future__ import annotations

import uuid
from typing import Any

from t2i_operator.render.common import LABEL_OWNER, Owner, label_selector, labels

from hack.support import (
    CRD,
    MUTATING_VERBS,
    ROOT,
    SA_USER,
    Kubectl,
    OperatorProcess,
    audit_events,
    condition,
    free_port,
    install_crd_and_rbac,
    is_ready,
    mutating_requests,
    operator_kubeconfig,
    wait_established,
    wait_for,
)

__all__ = [
    "CRD",
    "MUTATING_VERBS",
    "ROOT",
    "SA_USER",
    "Kubectl",
    "OperatorProcess",
    "audit_events",
    "condition",
    "free_port",
    "install_crd_and_rbac",
    "is_ready",
    "mutating_requests",
    "operator_kubeconfig",
    "t2i",
    "unique",
    "wait_established",
    "wait_for",
]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def t2i(name: str, namespace: str, **spec: Any) -> dict:
    """An example Text2ImageService sized for fake nodes (the tutorial's 14/16 CPUs would fit
    too, but small requests let 3 replicas share a node)."""
    body = {
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        }
    }
    body.update(spec)
    return {
        "apiVersion": "t2i.dev/v1alpha1",
        "kind": "Text2ImageService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def model_claims(kubectl: Kubectl, namespace: str, name: str) -> list[dict]:
    """The OSS model PVCs of a resource (named `<name>-models-<source digest>`)."""
    owner = Owner(name=name, namespace=namespace, uid="")
    return [
        c
        for c in kubectl.items("pvc", namespace, label_selector(labels(owner)))
        if c["metadata"]["name"].startswith(f"{name}-models-")
    ]


def model_volumes(kubectl: Kubectl, namespace: str, name: str) -> list[dict]:
    """The cluster-scoped OSS model PVs of a resource (found by the owner label)."""
    owner = Owner(name=name, namespace=namespace, uid="")
    return kubectl.items("pv", None, f"{LABEL_OWNER}={owner.owner_label}")


def model_claim(kubectl: Kubectl, namespace: str, name: str) -> dict | None:
    return _the_live_one(model_claims(kubectl, namespace, name))


def model_volume(kubectl: Kubectl, namespace: str, name: str) -> dict | None:
    return _the_live_one(model_volumes(kubectl, namespace, name))


def _the_live_one(objs: list[dict]) -> dict | None:
    """The one object not being deleted (a replaced pair may still be terminating), or None."""
    live = [o for o in objs if "deletionTimestamp" not in o["metadata"]]
    assert len(live) <= 1, [o["metadata"]["name"] for o in live]
    return live[0] if live else None
