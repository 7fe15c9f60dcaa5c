"""PURE: observed children → the custom resource's status.

Readiness follows `kubectl rollout status` (as NVIDIA NIM's isDeploymentReady does) plus pod
states, so a crash-looping or unschedulable service is never reported Ready (kserve#1859):
Ready needs the Deployment to have observed its generation, every replica updated and available,
no old replicas left, and no failing pods. Computed once per pass; lastTransitionTime only moves
when a condition's status changes, so an unchanged world yields an identical status (no write).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from t2i_operator import attestation  # a module import: attestation imports this module too
from t2i_operator.render.common import Owner, selector_string
from t2i_operator.spec import Spec

# Container waiting reasons that mean "this will not become ready by itself".
FAILING_WAIT_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True)
class Problem:
    """An input the operator cannot proceed without (missing Secret/PVC…): nothing is applied."""

    reason: str
    message: str


@dataclass(frozen=True)
class Cond:
    status: str
    reason: str
    message: str


def _conditions_of(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    items = ((obj or {}).get("status") or {}).get("conditions") or []
    return {c.get("type"): c for c in items}


def _is_deleting(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


# The server's start-up refusals (bad flag, model directory, a backend its image cannot run)
# are one stderr line with this prefix. Only such lines are quoted: other log lines may carry
# prompts (--log-prompts), which must not be copied into a resource's status.
SERVER_ERROR_PREFIX = "t2i-server: "
EXIT_MESSAGE_LIMIT = 300


def last_exit_message(container_status: dict[str, Any]) -> str:
    """The server's start-up error from the last exit of a crashed container (its termination
    message, filled from the log by the pod's FallbackToLogsOnError policy), shortened; "" when
    the last line is not one."""
    terminated = (container_status.get("lastState") or {}).get("terminated") or {}
    lines = [line.strip() for line in (terminated.get("message") or "").splitlines()]
    last = next((line for line in reversed(lines) if line), "")
    if not last.startswith(SERVER_ERROR_PREFIX):
        return ""
    return last if len(last) <= EXIT_MESSAGE_LIMIT else last[: EXIT_MESSAGE_LIMIT - 1] + "…"


def pod_failure(
    pods: list[dict[str, Any]], lost_nodes: frozenset[str] = frozenset()
) -> Cond | None:
    """The first reason a pod cannot become ready on its own (crash loop, image, scheduling, its
    node deleted: such a pod keeps its last Ready status until the cluster collects it)."""
    for pod in pods:
        if _is_deleting(pod):
            continue
        name = (pod.get("metadata") or {}).get("name", "?")
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node in lost_nodes:
            return Cond(
                "True",
                "NodeLost",
                f"pod {name} ran on node {node}, which was deleted: it serves nothing until "
                "the cluster replaces it",
            )
        status = pod.get("status") or {}
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FAILING_WAIT_REASONS:
                restarts = cs.get("restartCount", 0)
                exited = last_exit_message(cs)
                return Cond(
                    "True",
                    waiting["reason"],
                    f"pod {name}: container {cs.get('name')} is {waiting['reason']} "
                    f"(restarts: {restarts})" + (f"; it exited with: {exited}" if exited else ""),
                )
        for c in status.get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                return Cond(
                    "True",
                    c.get("reason") or "Unschedulable",
                    f"pod {name}: {c.get('message') or 'cannot be scheduled'}",
                )
    return None


def rollout_state(
    deployment: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    lost_nodes: frozenset[str] = frozenset(),
) -> tuple[Cond, Cond, Cond]:
    """(Ready, Progressing, Degraded) from the Deployment's own conditions and counters."""
    if deployment is None:
        return (
            Cond("False", "DeploymentMissing", "the Deployment does not exist yet"),
            Cond("True", "Creating", "creating the Deployment"),
            Cond("False", "AsExpected", "no failure observed"),
        )
    meta = deployment.get("metadata") or {}
    dspec = deployment.get("spec") or {}
    dstatus = deployment.get("status") or {}
    conds = _conditions_of(deployment)
    want = dspec.get("replicas", 1)
    updated = dstatus.get("updatedReplicas", 0)
    total = dstatus.get("replicas", 0)
    available = dstatus.get("availableReplicas", 0)

    failure = pod_failure(pods, lost_nodes)
    progressing = conds.get("Progressing") or {}
    replica_failure = conds.get("ReplicaFailure") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        degraded = Cond(
            "True",
            "ProgressDeadlineExceeded",
            progressing.get("message") or "the rollout exceeded its progress deadline",
        )
    elif replica_failure.get("status") == "True":
        degraded = Cond(
            "True",
            replica_failure.get("reason") or "ReplicaFailure",
            replica_failure.get("message") or "pods cannot be created",
        )
    elif failure is not None:
        degraded = failure
    else:
        degraded = Cond("False", "AsExpected", "no failure observed")

    if dstatus.get("observedGeneration", 0) < meta.get("generation", 0):
        ready = Cond("False", "RolloutPending", "the Deployment controller has not seen the spec")
    elif want == 0:
        ready = Cond("False", "ScaledToZero", "replicas is 0: nothing serves requests")
    elif updated < want:
        ready = Cond("False", "RollingOut", f"{updated} of {want} replicas updated")
    elif total > updated:
        ready = Cond("False", "RollingOut", f"{total - updated} old replicas pending termination")
    elif available < updated:
        ready = Cond("False", "ReplicasUnavailable", f"{available} of {updated} replicas available")
    elif failure is not None:
        ready = Cond("False", failure.reason, failure.message)
    else:
        ready = Cond("True", "Available", f"{available} of {want} replicas available")

    if degraded.status == "True":
        ready = Cond("False", degraded.reason, degraded.message)
    if ready.status == "True":
        progressing_cond = Cond("False", "RolloutComplete", "the rollout is complete")
    elif degraded.status == "True":
        progressing_cond = Cond("False", degraded.reason, "the rollout is stuck")
    else:
        progressing_cond = Cond("True", ready.reason, ready.message)
    return ready, progressing_cond, degraded


def merge_conditions(
    desired: dict[str, Cond],
    previous: list[dict[str, Any]] | None,
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """Kubernetes-convention conditions, keeping lastTransitionTime unless status changed."""
    before = {c.get("type"): c for c in previous or []}
    out = []
    for ctype, cond in desired.items():
        old = before.get(ctype) or {}
        changed = old.get("status") != cond.status
        out.append(
            {
                "type": ctype,
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message,
                "lastTransitionTime": now if changed else old.get("lastTransitionTime", now),
                "observedGeneration": generation,
            }
        )
    return out


def running_nodes(pods: list[dict[str, Any]]) -> list[str]:
    return sorted(
        {
            (p.get("spec") or {}).get("nodeName")
            for p in pods
            if not _is_deleting(p)
            and (p.get("status") or {}).get("phase") == "Running"
            and (p.get("spec") or {}).get("nodeName")
        }
    )


IMAGES_SHARED = "ImagesShared"


def images_shared(spec: Spec) -> Cond:
    """Whether an image URL works whichever pod the Service sends its GET to. False only for
    emptyDir storage with more than one possible replica (the HPA's maxReplicas counts)."""
    storage = spec.imageStorage
    if storage.type == "PVC":
        return Cond(
            "True",
            "SharedClaim",
            f"every replica writes and serves images on PersistentVolumeClaim "
            f"{storage.pvcClaimName}",
        )
    if spec.max_replicas <= 1:
        return Cond("True", "SingleReplica", "one replica: its emptyDir holds every image")
    return Cond(
        "False",
        "EmptyDirWithReplicas",
        f"spec.imageStorage.type is EmptyDir with up to {spec.max_replicas} replicas: an image "
        "URL answers 404 when the Service sends it to a pod that did not make it; set "
        "spec.imageStorage.type: PVC with a ReadWriteMany claim (docs/operations.md)",
    )


# --- KEDA autoscaling (issue 19) -------------------------------------------------------------
@dataclass(frozen=True)
class KedaView:
    """What the pass saw of KEDA: is the ScaledObject API served, and our ScaledObject."""

    installed: bool
    scaled_object: dict[str, Any] | None = None


def keda_condition(spec: Spec, keda: KedaView) -> Cond:
    """AutoscalerUnavailable: True when QueueDepth mode cannot scale (KEDA missing, or its
    ScaledObject not Ready — e.g. Prometheus unreachable), with what runs meanwhile."""
    if not keda.installed:
        return Cond(
            "True",
            "KEDANotInstalled",
            "spec.autoscaling.mode is QueueDepth but the cluster does not serve KEDA's "
            "keda.sh/v1alpha1 ScaledObject: install KEDA; running spec.replicas "
            f"({spec.replicas}) meanwhile",
        )
    so = _conditions_of(keda.scaled_object).get("Ready") or {}
    if so.get("status") == "False":
        return Cond(
            "True",
            "ScaledObjectNotReady",
            f"KEDA ScaledObject {_name(keda.scaled_object)}: "
            f"{so.get('reason') or ''} {so.get('message') or ''}".strip(),
        )
    return Cond("False", "KEDAScaling", f"KEDA ScaledObject {_name(keda.scaled_object)} scales")


def _name(obj: dict[str, Any] | None) -> str:
    return ((obj or {}).get("metadata") or {}).get("name", "?")


def autoscaler_summary(spec: Spec | None, keda: KedaView | None, replicas: int) -> str:
    """The printer column: who sets the replica count right now, and 'scaled to zero'."""
    if spec is None or not spec.autoscaling.enabled:
        return "Off"
    if not spec.autoscaling.keda:
        return "HPA"
    if keda is None or not keda.installed:
        return "KEDANotInstalled"
    return "KEDA: scaled to zero" if replicas == 0 else "KEDA"


def _scaled_to_zero_by_keda(keda: KedaView) -> Cond:
    active = _conditions_of(keda.scaled_object).get("Active") or {}
    why = active.get("message") or "no trigger is active"
    return Cond(
        "False",
        "ScaledToZero",
        f"scaled to zero by KEDA ScaledObject {_name(keda.scaled_object)}: {why} (the queue is "
        "empty and no schedule window is open); the first trigger to fire scales it up again",
    )


# Fields that describe the APPLIED spec: kept from the last applied generation while a newer
# one cannot be applied (a problem), so status never reports a spec that is not running.
APPLIED_FIELDS = ("observedGeneration", "url", "pool", "modelSource", "size", "sizing")
NODES_FIT = "NodesFit"


def sizing(spec: Spec, threads: int) -> str:
    """The effective size on one line (`kubectl get t2i -o wide`): requests/limits, batch,
    threads."""
    req = spec.resources.get("requests") or {}
    lim = spec.resources.get("limits") or {}

    def pair(name: str) -> str:
        return f"{req.get(name, '-')}/{lim.get(name, '-')}"

    return (
        f"cpu {pair('cpu')} memory {pair('memory')} maxBatch {spec.server.maxBatch} "
        f"threads {threads}"
    )


def _nodes_fit(capacity: Cond | None, previous: dict[str, Any]) -> dict[str, Cond]:
    """The NodesFit condition: the new verdict, else (a status-only pass, or nodes unreadable)
    the previous one unchanged."""
    if capacity is not None:
        return {NODES_FIT: capacity}
    old = _conditions_of({"status": previous}).get(NODES_FIT)
    if old is None:
        return {}
    return {
        NODES_FIT: Cond(old.get("status", "Unknown"), old.get("reason", ""), old.get("message", ""))
    }


def compute_status(
    *,
    spec: Spec | None,
    owner: Owner,
    generation: int,
    deployment: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    hpa: dict[str, Any] | None,
    problem: Problem | None,
    previous: dict[str, Any] | None,
    now: str,
    capacity: Cond | None = None,
    threads: int = 0,
    keda: KedaView | None = None,
    lost_nodes: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The full status object to store (via the status subresource).

    Without a problem, `generation` was applied: observedGeneration and the spec-derived fields
    follow it. With one, they keep their previous values (absent before the first success);
    the conditions carry `generation` and say why it is not applied."""
    previous = previous or {}
    if problem is not None:
        ready = Cond("False", problem.reason, problem.message)
        progressing = Cond("False", problem.reason, "waiting for the input to be fixed")
        degraded = Cond("True", problem.reason, problem.message)
    else:
        ready, progressing, degraded = rollout_state(deployment, pods, lost_nodes)
    if hpa is not None and ready.status == "True":
        hstatus = hpa.get("status") or {}
        ready = Cond(
            "True",
            ready.reason,
            f"{ready.message}; autoscaled by HPA {hpa['metadata']['name']} "
            f"(desired {hstatus.get('desiredReplicas', '?')})",
        )
    keda_conds: dict[str, Cond] = {}
    if problem is None and spec is not None and spec.autoscaling.keda and keda is not None:
        keda_conds["AutoscalerUnavailable"] = keda_condition(spec, keda)
        if ready.reason == "ScaledToZero" and keda.installed:
            ready = _scaled_to_zero_by_keda(keda)
    dstatus = (deployment or {}).get("status") or {}
    if problem is None and spec is not None:
        applied = {
            "observedGeneration": generation,
            "url": f"http://{owner.name}.{owner.namespace}.svc:{spec.service.port}",
            "pool": spec.placement.pool,
            "modelSource": spec.model.source,
            "size": spec.size or "default",
            "sizing": sizing(spec, threads),
        }
    else:
        applied = {k: previous[k] for k in APPLIED_FIELDS if k in previous}
    return {
        **applied,
        "replicas": dstatus.get("replicas", 0),
        "readyReplicas": dstatus.get("readyReplicas", 0),
        "selector": selector_string(owner),
        "nodes": running_nodes(pods),
        "autoscaler": autoscaler_summary(
            spec, keda, ((deployment or {}).get("spec") or {}).get("replicas", 1)
        ),
        "conditions": merge_conditions(
            attestation.with_attestation(
                {
                    "Ready": ready,
                    "Progressing": progressing,
                    "Degraded": degraded,
                    **_nodes_fit(capacity, previous),
                    **({IMAGES_SHARED: images_shared(spec)} if spec is not None else {}),
                    **keda_conds,
                },
                previous.get("conditions"),
                spec.placement.pool if spec is not None else previous.get("pool", ""),
            ),
            previous.get("conditions"),
            generation,
            now,
        ),
    }
