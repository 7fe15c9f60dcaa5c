"""One reconcile pass: check → read inputs → render → apply → prune → status. No kopf here.

The spec and the inputs are validated BEFORE anything is written, so a spec the renderer cannot
use, or a missing Secret or PVC, never leaves a half-applied set of children; the problem is
reported in status instead. `status.observedGeneration` moves only when a generation was
applied: status never claims a spec that is not what runs.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from t2i_operator import apply, capacity, monitoring
from t2i_operator import spec as spec_mod
from t2i_operator.kube import Kube, Ref
from t2i_operator.render import Credentials, Owner, render_all
from t2i_operator.render.common import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGER, selector_string
from t2i_operator.render.deployment import effective_threads, render_deployment
from t2i_operator.render.hpa import render_hpa
from t2i_operator.render.keda import API_VERSION as KEDA_API
from t2i_operator.render.keda import KIND as SCALED_OBJECT
from t2i_operator.render.keda import hpa_name as keda_hpa_name
from t2i_operator.render.keda import render_scaled_object, without_keda
from t2i_operator.render.pdb import pdb_wanted, render_pdb
from t2i_operator.render.service import render_service
from t2i_operator.render.storage import render_pvc
from t2i_operator.status import Cond, KedaView, Problem, compute_status, images_shared
from t2i_operator.validate import SpecError, check

CR_API_VERSION = f"{spec_mod.API_GROUP}/{spec_mod.API_VERSION}"
# One pass at a time per custom resource: the CR handlers and the child watchers share it.
# Reasons only a full pass can clear (pod events must not overwrite them).
INPUT_PROBLEMS = frozenset(
    {
        "SecretNotFound",
        "SecretKeyMissing",
        "PVCNotFound",
        "ApplyRejected",
        "ApplyFailed",
        "InvalidSpec",
        "RenderFailed",
    }
)
# Problems only a new spec can clear: reported once, not retried.
SPEC_PROBLEMS = frozenset({"InvalidSpec", "RenderFailed"})
_locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
# CRs whose last NodesFit verdict was False: a node event re-checks only these.
_unfit: set[tuple[str, str]] = set()
_node_fingerprints: dict[str, tuple] = {}
# Nodes seen deleted (until a node of that name comes back): their pods keep a stale Ready
# status until the pod garbage collector removes them, so status counts them as lost.
_lost_nodes: set[str] = set()


@dataclass
class Outcome:
    problem: Problem | None = None
    keda_missing: bool = False  # QueueDepth mode without KEDA: re-check later (handlers.py)
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    status_written: bool = False
    capacity: Cond | None = None  # NodesFit verdict of this pass (None: nodes not readable)
    images_shared: Cond | None = None  # ImagesShared of the parsed spec (None: spec unusable)


def owner_of(cr: dict[str, Any]) -> Owner:
    meta = cr["metadata"]
    return Owner(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta["uid"],
        labels=tuple(sorted((meta.get("labels") or {}).items())),
    )


def _decode(data: dict[str, str], key: str) -> str | None:
    try:
        return base64.b64decode(data[key], validate=True).decode() if key in data else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def read_inputs(
    kube: Kube, spec: spec_mod.Spec, namespace: str
) -> tuple[Credentials | None, Problem | None]:
    """The user's objects the children depend on; a Problem names the spec field to fix."""
    model = spec.model
    if model.source == "OSS" and model.oss is not None:
        ref = model.oss.credentialsSecretRef
        secret = kube.get(Ref("v1", "Secret", ref.name, namespace))
        if secret is None:
            return None, Problem(
                "SecretNotFound",
                f"Secret {namespace}/{ref.name} (spec.model.oss.credentialsSecretRef.name) "
                "does not exist",
            )
        data = secret.get("data") or {}
        values = {}
        for field_name, key in (
            ("accessKeyIdKey", ref.accessKeyIdKey),
            ("accessKeySecretKey", ref.accessKeySecretKey),
        ):
            values[field_name] = _decode(data, key)
            if not values[field_name]:
                return None, Problem(
                    "SecretKeyMissing",
                    f"Secret {namespace}/{ref.name} has no non-empty key {key!r} "
                    f"(spec.model.oss.credentialsSecretRef.{field_name})",
                )
        return Credentials(values["accessKeyIdKey"], values["accessKeySecretKey"]), None
    if model.source == "PVC":
        claim = model.pvcClaimName or ""
        if kube.get(Ref("v1", "PersistentVolumeClaim", claim, namespace)) is None:
            return None, Problem(
                "PVCNotFound",
                f"PersistentVolumeClaim {namespace}/{claim} (spec.model.pvc.claimName) "
                "does not exist",
            )
    return None, None


def image_storage_problem(kube: Kube, spec: spec_mod.Spec, namespace: str) -> Problem | None:
    """The shared image claim (spec.imageStorage.pvc.claimName) must exist before pods mount it."""
    claim = spec.imageStorage.pvcClaimName
    if spec.imageStorage.type != "PVC" or claim is None:
        return None
    if kube.get(Ref("v1", "PersistentVolumeClaim", claim, namespace)) is None:
        return Problem(
            "PVCNotFound",
            f"PersistentVolumeClaim {namespace}/{claim} (spec.imageStorage.pvc.claimName) "
            "does not exist",
        )
    return None


def going_away(error: ApiException) -> bool:
    """The CR vanished mid-pass, or its namespace is being deleted: nothing left to do."""
    return error.status == 404 or (
        error.status == 403 and "NamespaceTerminating" in (error.body or "")
    )


def apply_problem(error: ApiException) -> Problem | None:
    """What a failed apply means for the user, or None for errors kopf should just retry.

    A 404 (the child's API no longer served) → ApplyFailed, retried. Invalid children
    (400/409/422, and the 500s for a value the server cannot convert) → ApplyRejected.
    Refusals by the cluster that the user can act on — a ResourceQuota (403 Forbidden), a full
    Service IP range or a failing webhook (other 5xx) — → ApplyFailed, shown in status and
    Events, not only in the operator's log."""
    if error.status == 404:
        # Applying creates what is missing, so a 404 means the cluster stopped serving the
        # child's API mid-pass (the ServiceMonitor CRD removed): retried, and said.
        return Problem(
            "ApplyFailed", f"the cluster does not serve this child's API: {_api_message(error)}"
        )
    if going_away(error):
        return None
    if error.status in (400, 409, 422) or _unconvertible(error):
        return Problem("ApplyRejected", _api_message(error))
    if error.status == 403 or (error.status or 0) >= 500:
        return Problem("ApplyFailed", _api_message(error))
    return None


# The API server answers 500 when a value cannot be converted to the child's type (a quantity
# it cannot parse, a string where a number goes): the message names the field, and only a new
# spec fixes it, so it is a rejection, not the cluster failing.
UNCONVERTIBLE = ("failed to create typed patch object", "failed to convert new object")


def _unconvertible(error: ApiException) -> bool:
    return error.status == 500 and _api_message(error).startswith(UNCONVERTIBLE)


def _api_message(error: ApiException) -> str:
    """The API server's own explanation (names the child and field, never a Secret's data)."""
    try:
        return json.loads(error.body or "{}").get("message") or str(error.reason)
    except ValueError:
        return str(error.reason)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checked_spec(raw: dict[str, Any] | None) -> tuple[spec_mod.Spec | None, Problem | None]:
    """The defaulted spec, or the Problem naming the field the renderer cannot use."""
    try:
        spec = spec_mod.parse(raw)
        check(spec)
    except SpecError as e:
        return None, Problem("InvalidSpec", str(e))
    except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError) as e:
        return None, Problem("InvalidSpec", f"the spec cannot be read: {type(e).__name__}: {e}")
    return spec, None


def render_checked(
    spec: spec_mod.Spec,
    owner: Owner,
    credentials: Credentials | None,
    service_monitors: bool = False,
) -> tuple[list[dict[str, Any]], Problem | None]:
    """render_all, with a renderer failure turned into a named Problem instead of a traceback."""
    try:
        return render_all(spec, owner, credentials, service_monitors), None
    except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError) as e:
        return [], Problem("RenderFailed", f"the spec cannot be rendered: {type(e).__name__}: {e}")


# --- KEDA (issue 19): detected on every pass that needs it, so installing it later is seen ------
def keda_view(kube: Kube, spec: spec_mod.Spec | None, owner: Owner) -> KedaView | None:
    """None unless the spec asks for KEDA; else whether KEDA is served, and our ScaledObject."""
    if spec is None or not spec.autoscaling.keda:
        return None
    if not kube.serves(KEDA_API, SCALED_OBJECT):
        return KedaView(installed=False)
    so = kube.get(Ref(KEDA_API, SCALED_OBJECT, owner.name, owner.namespace))
    return KedaView(installed=True, scaled_object=so)


def runnable(spec: spec_mod.Spec, keda: KedaView | None) -> spec_mod.Spec:
    """The spec to render: QueueDepth without KEDA runs the fixed spec.replicas meanwhile."""
    return without_keda(spec) if keda is not None and not keda.installed else spec


def refresh_status(
    kube: Kube,
    cr: dict[str, Any],
    spec: spec_mod.Spec | None,
    problem: Problem | None,
    fit: Cond | None = None,
    keda: KedaView | None = None,
) -> bool:
    """Observe the children, compute the status, write it only if it changed."""
    owner = owner_of(cr)
    deployment = kube.get(Ref("apps/v1", "Deployment", owner.name, owner.namespace))
    pods = kube.list("v1", "Pod", owner.namespace, selector_string(owner))
    if keda is None:
        keda = keda_view(kube, spec, owner)
    hpa_of = keda_hpa_name(owner) if keda is not None else owner.name
    hpa = (
        kube.get(Ref("autoscaling/v2", "HorizontalPodAutoscaler", hpa_of, owner.namespace))
        if spec is not None and runnable(spec, keda).autoscaling.enabled
        else None
    )
    previous = cr.get("status") or {}
    status = compute_status(
        spec=spec,
        owner=owner,
        generation=cr["metadata"].get("generation", 0),
        deployment=deployment,
        pods=pods,
        hpa=hpa,
        problem=problem,
        previous=previous,
        now=now(),
        capacity=fit,
        threads=effective_threads(spec) if spec is not None else 0,
        keda=keda,
        lost_nodes=frozenset(_lost_nodes),
    )
    if all(previous.get(k) == v for k, v in status.items()):
        return False
    kube.patch_status(owner.namespace, owner.name, status)
    return True


def _fresh(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    cr = kube.get(Ref(CR_API_VERSION, spec_mod.KIND, name, namespace))
    if cr is None or cr["metadata"].get("deletionTimestamp"):
        return None  # gone or going: garbage collection and the finalizer take it from here
    return cr


def reconcile(kube: Kube, namespace: str, name: str) -> Outcome | None:
    """Bring the children of one CR to the desired state and report it; None if the CR is gone."""
    with _locks[(namespace, name)]:
        cr = _fresh(kube, namespace, name)
        if cr is None:
            return None
        owner = owner_of(cr)
        outcome = Outcome()
        spec, outcome.problem = checked_spec(cr.get("spec"))
        desired: list[dict[str, Any]] = []
        service_monitors = monitoring.available()
        keda = keda_view(kube, spec, owner)
        outcome.keda_missing = keda is not None and not keda.installed
        if spec is not None:
            outcome.images_shared = images_shared(spec)
            credentials, outcome.problem = read_inputs(kube, spec, namespace)
            outcome.problem = outcome.problem or image_storage_problem(kube, spec, namespace)
            if outcome.problem is None:
                desired, outcome.problem = render_checked(
                    runnable(spec, keda), owner, credentials, service_monitors
                )
        if spec is not None and outcome.problem is None:
            try:
                outcome.written = apply.apply_children(kube, desired)
                outcome.deleted = apply.prune(kube, desired, owner, service_monitors)
            except ApiException as e:
                if e.status == 404:
                    monitoring.check(kube)  # the next attempt renders for what is served now
                outcome.problem = apply_problem(e)
                if outcome.problem is None:
                    raise
        if spec is not None and outcome.problem is None:
            outcome.capacity = check_nodes(kube, spec, (namespace, name))
        outcome.status_written = refresh_status(
            kube, cr, spec, outcome.problem, fit=outcome.capacity, keda=keda
        )
        return outcome


def check_nodes(kube: Kube, spec: spec_mod.Spec, key: tuple[str, str]) -> Cond | None:
    """The NodesFit verdict; None when the operator may not read nodes (an older RBAC)."""
    try:
        nodes = kube.list("v1", "Node", None, "")
    except ApiException as e:
        if e.status in (401, 403):
            return None
        raise
    verdict = capacity.nodes_fit(spec, nodes)
    if verdict.status == "False":
        _unfit.add(key)
    else:
        _unfit.discard(key)
    return verdict


def _fingerprint(node: dict[str, Any]) -> tuple:
    """What the NodesFit verdict depends on (not heartbeats or conditions)."""
    meta, nspec = node.get("metadata") or {}, node.get("spec") or {}
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return (
        tuple(sorted((meta.get("labels") or {}).items())),
        bool(nspec.get("unschedulable")),
        allocatable.get("cpu"),
        allocatable.get("memory"),
    )


def node_changed(kube: Kube, node: dict[str, Any], deleted: bool) -> list[tuple[str, str]]:
    """A node appeared, went, or changed what NodesFit depends on: re-run the passes of the CRs
    no node could hold. Returns the CRs re-checked (none on a mere heartbeat)."""
    name = (node.get("metadata") or {}).get("name", "")
    before = _node_fingerprints.pop(name, None)
    if not deleted:
        _lost_nodes.discard(name)
        _node_fingerprints[name] = _fingerprint(node)
        if before == _node_fingerprints[name]:
            return []
    waiting = sorted(_unfit)
    for namespace, cr_name in waiting:
        reconcile(kube, namespace, cr_name)
    return waiting


def node_lost(kube: Kube, node: str) -> dict[tuple[str, str], list[str]]:
    """A node was deleted: our pods on it are lost (their status still reads Ready). Refresh the
    status of each service that had one there; returns (namespace, service) → its lost pods
    (for a Warning Event)."""
    _lost_nodes.add(node)
    lost: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for pod in kube.list("v1", "Pod", None, f"{LABEL_MANAGED_BY}={MANAGER}"):
        meta = pod["metadata"]
        service = (meta.get("labels") or {}).get(LABEL_INSTANCE)
        if service and (pod.get("spec") or {}).get("nodeName") == node:
            lost[(meta["namespace"], service)].append(meta["name"])
    for namespace, service in sorted(lost):
        observe(kube, namespace, service)
    return {key: sorted(pods) for key, pods in sorted(lost.items())}


def child_changed(kube: Kube, namespace: str, name: str, child: dict[str, Any] | None) -> None:
    """A Deployment/Service of ours changed (`child`) or was deleted (None).

    A full pass only when the child drifted from what we render; otherwise (the common case:
    the Deployment controller updating its status during a rollout) refresh status only.
    """
    cr = _fresh(kube, namespace, name)
    if cr is None:
        return
    spec, problem = checked_spec(cr.get("spec"))
    if spec is None or problem is not None or not applied(cr):
        return  # the failing full pass reports it; a child event changes nothing about that
    owner = owner_of(cr)
    desired = {
        "Deployment": render_deployment,
        "Service": render_service,
        "HorizontalPodAutoscaler": render_hpa,
        "PersistentVolumeClaim": render_pvc,
        "PodDisruptionBudget": render_pdb,
        SCALED_OBJECT: render_scaled_object,
    }
    kind = (child or {}).get("kind", "")
    render = desired.get(kind)
    spec = runnable(spec, keda_view(kube, spec, owner))
    if (
        (kind == "PersistentVolumeClaim" and spec.model.source != "OSS")
        or (
            kind == "HorizontalPodAutoscaler"
            and (not spec.autoscaling.enabled or spec.autoscaling.keda)
        )
        or (kind == SCALED_OBJECT and not spec.autoscaling.keda)
        or (kind == "PodDisruptionBudget" and not pdb_wanted(spec))
    ):
        render = None  # not desired at all: the full pass prunes it
    try:
        drifted = render is not None and apply.needs_apply(render(spec, owner), child)
    except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError):
        return
    if child is None or render is None or drifted:
        reconcile(kube, namespace, name)
    else:
        observe(kube, namespace, name)


def observe(kube: Kube, namespace: str, name: str) -> None:
    """Status only (pods changed): cheaper than a full pass, same lock."""
    with _locks[(namespace, name)]:
        cr = _fresh(kube, namespace, name)
        if cr is None:
            return
        ready = {c.get("type"): c for c in (cr.get("status") or {}).get("conditions") or []}
        if ready.get("Ready", {}).get("reason") in INPUT_PROBLEMS:
            return  # the input problem stands until the next full pass re-checks the input
        if not applied(cr):
            return  # this generation is not applied yet: its full pass writes the status
        spec, problem = checked_spec(cr.get("spec"))
        if spec is not None and problem is None:
            refresh_status(kube, cr, spec, None)


def applied(cr: dict[str, Any]) -> bool:
    """The stored status describes the current generation (a full pass applied it)."""
    status = cr.get("status") or {}
    return status.get("observedGeneration") == cr["metadata"].get("generation")


def reconcile_all(kube: Kube, namespaces: list[str]) -> None:
    """A full pass of every resource (of `namespaces`, or the whole cluster when empty): after
    the cluster started or stopped serving an API a child depends on (ServiceMonitor)."""
    prefix = f"/apis/{spec_mod.API_GROUP}/{spec_mod.API_VERSION}"
    paths = (
        [f"{prefix}/namespaces/{ns}/{spec_mod.PLURAL}" for ns in namespaces]
        if namespaces
        else [f"{prefix}/{spec_mod.PLURAL}"]
    )
    for path in paths:
        for cr in kube.request("GET", path).get("items") or []:
            meta = cr["metadata"]
            try:
                reconcile(kube, meta["namespace"], meta["name"])
            except ApiException as e:
                if not going_away(e):
                    raise


def cleanup(kube: Kube, owner: Owner) -> list[str]:
    """On CR deletion: the PV is the one child garbage collection cannot remove."""
    _locks.pop((owner.namespace, owner.name), None)
    _unfit.discard((owner.namespace, owner.name))
    return apply.delete_volumes(kube, owner)
