"""Server-side apply of the desired children, and pruning of the ones no longer desired.

The only module that writes children. Three rules:
- Write nothing when nothing changed: a child is applied only if the desired fields are not all
  present in the live object, or our field manager still owns a field we no longer send
  (an SSA patch with identical content is still a mutating request).
- Never drop `spec.replicas` from the Deployment while we are its only owner: the API server
  would reset it to 1 before the HPA takes over (kubernetes/website#45387). A second manager
  takes the field over first, with the same value.
- Delete only what carries our ownership (ownerReference uid, or the PV's owner label).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from t2i_operator.kube import Kube, Ref
from t2i_operator.render.common import (
    LABEL_OWNER,
    MANAGER,
    Owner,
    credentials_secret_name,
    pvc_name,
)

HANDOVER_MANAGER = "t2i-operator-handover"


def is_subset(desired: Any, live: Any) -> bool:
    """Every field of `desired` has the same value in `live` (extra live fields are defaults)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            k in live and is_subset(v, live[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, x) for d, x in zip(desired, live, strict=True))
        )
    return desired == live


def _fields_paths(fields: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple]:
    """Paths in a managedFields fieldsV1 set, list members collapsed to "[]"."""
    for key, sub in fields.items():
        if key.startswith("f:"):
            path = (*prefix, key[2:])
        elif key[:2] in ("k:", "v:", "i:"):
            path = (*prefix, "[]")
        else:
            continue
        yield path
        if isinstance(sub, dict):
            yield from _fields_paths(sub, path)


def _object_paths(obj: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple]:
    if isinstance(obj, dict):
        for key, sub in obj.items():
            yield (*prefix, key)
            yield from _object_paths(sub, (*prefix, key))
    elif isinstance(obj, list):
        for item in obj:
            yield (*prefix, "[]")
            yield from _object_paths(item, (*prefix, "[]"))


def owned_paths(live: dict[str, Any], manager: str) -> set[tuple]:
    paths: set[tuple] = set()
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            paths.update(_fields_paths(entry.get("fieldsV1") or {}))
    return paths


def needs_apply(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    if live is None or not is_subset(desired, live):
        return True
    return not owned_paths(live, MANAGER) <= set(_object_paths(desired))


def _hand_over_replicas(kube: Kube, desired: dict[str, Any], live: dict[str, Any]) -> None:
    """Let another manager co-own spec.replicas before we stop sending it (HPA hand-over)."""
    if ("spec", "replicas") not in owned_paths(live, MANAGER):
        return
    meta = desired["metadata"]
    kube.apply(
        {
            "apiVersion": desired["apiVersion"],
            "kind": desired["kind"],
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {"replicas": live["spec"]["replicas"]},
        },
        manager=HANDOVER_MANAGER,
    )


def apply_children(kube: Kube, desired: list[dict[str, Any]]) -> list[str]:
    """Apply each desired child that differs from its live state; returns what was written."""
    written = []
    for obj in desired:
        ref = Ref.of(obj)
        live = kube.get(ref)
        if not needs_apply(obj, live):
            continue
        if live is not None and obj["kind"] == "Deployment" and "replicas" not in obj["spec"]:
            _hand_over_replicas(kube, obj, live)
        kube.apply(obj, manager=MANAGER)
        written.append(f"{ref.kind}/{ref.name}")
    return written


def _owned_by(obj: dict[str, Any], owner: Owner) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner.uid for r in refs)


def candidates(owner: Owner) -> list[Ref]:
    """Every namespaced child this CR can ever have: names are fixed by the design contract,
    so pruning reads them by name (no cluster-wide list of Secrets needed)."""
    ns, name = owner.namespace, owner.name
    return [
        Ref("autoscaling/v2", "HorizontalPodAutoscaler", name, ns),
        Ref("v1", "Service", name, ns),
        Ref("apps/v1", "Deployment", name, ns),
        Ref("v1", "PersistentVolumeClaim", pvc_name(owner), ns),
        Ref("v1", "Secret", credentials_secret_name(owner), ns),
    ]


def prune(kube: Kube, desired: list[dict[str, Any]], owner: Owner) -> list[str]:
    """Delete our children the spec no longer asks for (HPA with autoscaling off, OSS storage)."""
    keep = {(o["kind"], o["metadata"]["name"]) for o in desired}
    deleted = []
    for ref in candidates(owner):
        if (ref.kind, ref.name) in keep:
            continue
        live = kube.get(ref)
        if live is None or not _owned_by(live, owner):
            continue  # absent, or someone else's object that happens to have the name
        if kube.delete(ref, uid=live["metadata"].get("uid")):
            deleted.append(f"{ref.kind}/{ref.name}")
    volumes = {n for k, n in keep if k == "PersistentVolume"}
    deleted.extend(delete_volumes(kube, owner, keep=volumes))
    return deleted


def delete_volumes(kube: Kube, owner: Owner, keep: set[str] | frozenset = frozenset()) -> list[str]:
    """Delete the cluster-scoped PVs labelled as ours (they cannot carry an ownerReference)."""
    deleted = []
    for pv in kube.list("v1", "PersistentVolume", None, f"{LABEL_OWNER}={owner.owner_label}"):
        meta = pv["metadata"]
        if meta["name"] in keep or meta.get("deletionTimestamp"):
            continue
        if kube.delete(Ref.of(pv), uid=meta.get("uid")):
            deleted.append(f"PersistentVolume/{meta['name']}")
    return deleted
