"""Thin kopf handlers: each hands one event to a plain function in reconcile.py.

- The CR: resume + create + update → a full pass. A missing input → Warning Event, status
  Ready=False, and kopf.TemporaryError with a growing delay (retried until it appears). A spec
  the operator cannot render → Warning Event and status once, no retries (only a new spec helps).
- Any other exception in a handler → a Warning Event naming it (kopf itself only logs it), then
  kopf's retry.
- Owned Deployments, Services, HPAs, PVCs and PodDisruptionBudgets (by label): deletion or drift
  from the rendered state → a full pass of the owning CR (reverts it); any other change
  (rollout progress, HPA status) → status only. The Secret copy is not watched (that needs
  list/watch on every Secret in the cluster): it is immutable, and a deleted copy comes back at
  the resync.
- Owned pods: status only.
- Nodes (read-only): a node added, removed or resized re-runs the passes of the services whose
  NodesFit condition is False (no node of their pool can hold their requests); heartbeats do not.
  A deleted node's pods are lost (their status still says Ready until the pod garbage collector
  removes them): the services that had one go Degraded with reason NodeLost, and get a Warning
  Event.
- A slow timer re-runs the pass for what is not watched (the user's Secret, their PVCs: the
  model's and the shared image claim).
- Deletion: the finalizer's handler deletes the cluster-scoped PV; GC removes the rest. Only
  OSS and PVC resources carry the finalizer (the delete handler and the timer are filtered).
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from t2i_operator import reconcile
from t2i_operator.kube import Kube, Ref
from t2i_operator.render.common import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGER
from t2i_operator.spec import API_GROUP, API_VERSION, KIND, PLURAL

OWNED = {LABEL_MANAGED_BY: MANAGER}
MAX_RETRY_DELAY = 60
EVENT_MESSAGE_LIMIT = 500
KEDA_MISSING = (
    "spec.autoscaling.mode is QueueDepth but KEDA (keda.sh/v1alpha1 ScaledObject) is not "
    "installed: running spec.replicas until it is"
)


def _retry_delay(retry: int) -> int:
    return min(5 * 2**retry, MAX_RETRY_DELAY)


def _report(body: kopf.Body, error: Exception) -> None:
    """An unexpected failure as a Warning Event on the CR (API errors carry only the server's
    message, never a request body, so no Secret data can reach it)."""
    if isinstance(error, ApiException):
        detail = f"API server answered {error.status}: {reconcile._api_message(error)}"
    else:
        detail = f"{type(error).__name__}: {error}"
    kopf.warn(body, reason="ReconcileError", message=detail[:EVENT_MESSAGE_LIMIT])


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL, backoff=10)
@kopf.on.create(API_GROUP, API_VERSION, PLURAL, backoff=10)
@kopf.on.update(API_GROUP, API_VERSION, PLURAL, backoff=10)
def reconcile_service(
    name: str, namespace: str, body: kopf.Body, memo: kopf.Memo, retry: int, logger: Any, **_: Any
) -> None:
    try:
        outcome = reconcile.reconcile(memo.kube, namespace, name)
    except ApiException as e:
        if reconcile.going_away(e):
            return
        _report(body, e)
        raise
    except Exception as e:
        _report(body, e)
        raise
    if outcome is None:
        return
    if outcome.written or outcome.deleted:
        logger.info(f"applied {outcome.written}, deleted {outcome.deleted}")
    if outcome.capacity is not None and outcome.capacity.status == "False":
        kopf.warn(body, reason=outcome.capacity.reason, message=outcome.capacity.message)
    shared = outcome.images_shared
    if shared is not None and shared.status == "False":
        kopf.warn(body, reason=shared.reason, message=shared.message)
    if outcome.problem is not None:
        kopf.warn(body, reason=outcome.problem.reason, message=outcome.problem.message)
        if outcome.problem.reason in reconcile.SPEC_PROBLEMS:
            return  # reported in status and an Event; retrying the same spec cannot help
        raise kopf.TemporaryError(outcome.problem.message, delay=_retry_delay(retry))
    if outcome.keda_missing:
        # QueueDepth mode without KEDA: everything else is applied (fixed spec.replicas); the
        # pass is retried with a growing delay so KEDA installed later is picked up.
        if retry == 0:
            kopf.warn(body, reason="KEDANotInstalled", message=KEDA_MISSING)
        raise kopf.TemporaryError(KEDA_MISSING, delay=_retry_delay(retry))


def resync(name: str, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    """Slow safety net for what is not watched: a rotated Secret, a PVC that appeared.
    Writes nothing when nothing changed. Registered as a timer by main.py (--resync-seconds)."""
    try:
        reconcile.reconcile(memo.kube, namespace, name)
    except ApiException as e:
        if not reconcile.going_away(e):
            raise


def _owner_name(body: kopf.Body) -> str | None:
    for ref in body.metadata.get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(f"{API_GROUP}/"):
            return ref.get("name")
    return None


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
@kopf.on.event("", "v1", "services", labels=OWNED)
@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=OWNED)
@kopf.on.event("", "v1", "persistentvolumeclaims", labels=OWNED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=OWNED)
def child_changed(
    body: kopf.Body, namespace: str, memo: kopf.Memo, type: str | None, **_: Any
) -> None:
    owner = _owner_name(body)
    if owner:
        child = None if type == "DELETED" else dict(body)
        try:
            reconcile.child_changed(memo.kube, namespace, owner, child)
        except ApiException as e:
            if not reconcile.going_away(e):
                raise


@kopf.on.event("", "v1", "pods", labels=OWNED)
def pod_changed(body: kopf.Body, namespace: str, memo: kopf.Memo, **_: Any) -> None:
    owner = body.metadata.labels.get(LABEL_INSTANCE)
    if owner:
        try:
            reconcile.observe(memo.kube, namespace, owner)
        except ApiException as e:
            if not reconcile.going_away(e):
                raise


@kopf.on.event("", "v1", "nodes")
def node_changed(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """Read-only: a node that appeared or changed size may let a NoNodesFit service fit; a
    deleted node loses its pods (status and a Warning Event on each service that had one)."""
    try:
        if type == "DELETED":
            _warn_lost(
                memo.kube, body.metadata.name, reconcile.node_lost(memo.kube, body.metadata.name)
            )
        reconcile.node_changed(memo.kube, dict(body), deleted=type == "DELETED")
    except ApiException as e:
        if not reconcile.going_away(e):
            raise


def _warn_lost(kube: Kube, node: str, lost: dict[tuple[str, str], list[str]]) -> None:
    for (namespace, service), pods in lost.items():
        cr = kube.get(Ref(reconcile.CR_API_VERSION, KIND, service, namespace))
        if cr is None:
            continue
        kopf.warn(
            cr,
            reason="NodeLost",
            message=f"node {node} was deleted with pod(s) {', '.join(pods)} of this service on "
            "it; they are replaced once the cluster collects them",
        )


def _has_volume(spec: kopf.Spec, **_: Any) -> bool:
    """Only OSS resources have a cluster-scoped PV, so only they carry the finalizer (kopf adds
    it only while a deletion handler matches): deleting any other CR never waits on us."""
    return (spec.get("model") or {}).get("source") == "OSS"


def has_unwatched_input(spec: kopf.Spec, **_: Any) -> bool:
    """The resync timer's filter: only the user's Secret (OSS) and PVC are not watched. (kopf
    puts a finalizer on every object a timer runs for, so an unfiltered timer would make every
    resource's deletion wait for the operator.)"""
    return (spec.get("model") or {}).get("source") in ("OSS", "PVC") or (
        spec.get("imageStorage") or {}
    ).get("type") == "PVC"


@kopf.on.delete(API_GROUP, API_VERSION, PLURAL, when=_has_volume)
def delete_volumes(body: kopf.Body, memo: kopf.Memo, logger: Any, **_: Any) -> None:
    deleted = reconcile.cleanup(memo.kube, reconcile.owner_of(body))
    if deleted:
        logger.info(f"deleted {deleted}")
