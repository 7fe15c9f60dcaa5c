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
from t2i_operator.quantities import quantity_value
from t2i_operator.render.common import (
    LABEL_OWNER,
    MANAGER,
    Owner,
    credentials_secret_name,
    label_selector,
    labels,
)

HANDOVER_MANAGER = "t2i-operator-handover"


# Maps whose values the API server canonicalises as quantities ("0.5" → "500m", "1024Mi" → "1Gi").
QUANTITY_MAPS = frozenset({"requests", "limits", "capacity"})


def _empty(value: Any) -> bool:
    """Values the API server drops from a stored object (omitempty): "" / {} / [] / None."""
    return value is None or value == "" or value == {} or value == []


def _keyed(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def is_subset(desired: Any, live: Any, key: str = "") -> bool:
    """Every field of `desired` has the same value in `live`, as the API server stores it: extra
    live fields are defaults (or other managers' entries in lists keyed by name), empty values
    are dropped, and quantities are compared by value."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return _empty(desired) and live is None
        return all(is_subset(v, live[k], k) if k in live else _empty(v) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list):
            return _empty(desired) and live is None
        if _keyed(desired) and _keyed(live):
            # Associative lists (env, containers, volumes, ports): another manager's entries
            # survive our apply anyway, so they are no reason to write.
            by_name = {x["name"]: x for x in live}
            names = [d["name"] for d in desired]
            return (
                all(
                    n in by_name and is_subset(d, by_name[n])
                    for n, d in zip(names, desired, strict=True)
                )
                and [x["name"] for x in live if x["name"] in names] == names
            )
        return len(desired) == len(live) and all(
            is_subset(d, x) for d, x in zip(desired, live, strict=True)
        )
    if desired == live:
        return True
    if key in QUANTITY_MAPS or key in ("cpu", "memory", "storage"):
        a, b = quantity_value(desired), quantity_value(live)
        return a is not None and a == b
    return False


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


def _port_key(port: dict[str, Any]) -> tuple[Any, str]:
    return port.get("port"), port.get("protocol") or "TCP"


def _reset_clashing_ports(kube: Kube, desired: dict[str, Any], live: dict[str, Any]) -> None:
    """A hand-edited Service port keeps our port's name under another (port, protocol) key,
    which server-side apply merges into a list with the name twice (422 forever). Replace the
    list first (a merge patch replaces lists whole); the apply then owns it again."""
    ours = desired["spec"]["ports"]
    keys = {_port_key(p) for p in ours}
    names = {p["name"] for p in ours}
    live_ports = (live.get("spec") or {}).get("ports") or []
    if not any(p.get("name") in names and _port_key(p) not in keys for p in live_ports):
        return
    kube.merge_patch(Ref.of(desired), {"spec": {"ports": ours}}, manager=MANAGER)


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
        if live is not None and obj["kind"] == "Service":
            _reset_clashing_ports(kube, obj, live)
        if live is not None and obj["kind"] == "Secret" and live.get("immutable"):
            # An immutable copy whose data must change (a rotated key): replace it.
            kube.delete(ref, uid=live["metadata"].get("uid"))
        kube.apply(obj, manager=MANAGER)
        written.append(f"{ref.kind}/{ref.name}")
    return written


def _owned_by(obj: dict[str, Any], owner: Owner) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner.uid for r in refs)


def candidates(owner: Owner, claims: list[Ref], service_monitors: bool = False) -> list[Ref]:
    """Every namespaced child this CR can have. Names are fixed by the design contract, so
    most are read by name (no cluster-wide list of Secrets needed); the model claims are named by
    their OSS source (render/common.oss_volume_key), so the caller lists them by our labels. The
    ServiceMonitor only while the cluster serves its API (no request to an API that is not
    there)."""
    ns, name = owner.namespace, owner.name
    monitor = [Ref("monitoring.coreos.com/v1", "ServiceMonitor", name, ns)]
    return [
        *(monitor if service_monitors else []),
        Ref("autoscaling/v2", "HorizontalPodAutoscaler", name, ns),
        Ref("policy/v1", "PodDisruptionBudget", name, ns),
        Ref("keda.sh/v1alpha1", "ScaledObject", name, ns),
        Ref("v1", "Service", name, ns),
        Ref("apps/v1", "Deployment", name, ns),
        *claims,
        Ref("v1", "Secret", credentials_secret_name(owner), ns),
    ]


def prune(
    kube: Kube, desired: list[dict[str, Any]], owner: Owner, service_monitors: bool = False
) -> list[str]:
    """Delete our children the spec no longer asks for (HPA with autoscaling off, OSS storage,
    the PodDisruptionBudget at one replica, a ServiceMonitor opted out of)."""
    claims = [
        Ref.of(pvc)
        for pvc in kube.list(
            "v1", "PersistentVolumeClaim", owner.namespace, label_selector(labels(owner))
        )
    ]
    keep = {(o["kind"], o["metadata"]["name"]) for o in desired}
    deleted = []
    for ref in candidates(owner, claims, service_monitors):
        if (ref.kind, ref.name) in keep:
            continue
        live = kube.get(ref)
        if live is None or not _owned_by(live, owner) or live["metadata"].get("deletionTimestamp"):
            continue  # absent, someone else's object that has the name, or already going
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
