"""PURE: the user's pod-level knobs (spec.pod, spec.container) merged into the operator's pod.

Rules (docs/values-mapping.md "Pod knobs"): the operator's own env names, volume names, mount
paths and selector labels win; the CRD refuses clashes with a message naming the field, and
validate.py refuses them again for objects stored before a rule existed. The one escape hatch is
spec.container.allowOperatorEnvOverride: the user's value then replaces the operator's
(for a T2I_<FLAG> name, the operator drops the flag so the environment variable takes effect).
"""

from __future__ import annotations

import copy
from typing import Any

from t2i_operator.render.common import Owner, operator_labels, propagated_labels, selector_labels
from t2i_operator.spec import ProbeTiming, Spec


def flag_env_name(flag: str) -> str:
    """The server reads every flag from T2I_<FLAG> too (inference_server/cli.py)."""
    return "T2I_" + flag.lstrip("-").upper().replace("-", "_")


def user_env_names(spec: Spec) -> set[str]:
    return {str(e.get("name")) for e in spec.container.env}


def drop_overridden_flags(args: list[str], overridden: set[str]) -> list[str]:
    """`args` (--flag value pairs) without the flags whose T2I_ name the user sets."""
    out: list[str] = []
    for i in range(0, len(args), 2):
        if flag_env_name(args[i]) not in overridden:
            out.extend(args[i : i + 2])
    return out


def merged_env(operator_env: list[dict[str, Any]], spec: Spec) -> list[dict[str, Any]]:
    """The operator's env first, then the user's. A user entry with an operator name replaces
    it only with allowOperatorEnvOverride (otherwise validation refused the spec already)."""
    user = [copy.deepcopy(e) for e in spec.container.env]
    names = {e["name"] for e in user}
    if spec.container.allowOperatorEnvOverride:
        operator_env = [e for e in operator_env if e["name"] not in names]
    else:
        owned = {e["name"] for e in operator_env}
        user = [e for e in user if e["name"] not in owned]
    return [*operator_env, *user]


def probe_timing(base: dict[str, Any], override: ProbeTiming) -> dict[str, Any]:
    """`base` with the user's timing fields (those set) replacing the operator's."""
    out = dict(base)
    for key in ("periodSeconds", "failureThreshold", "timeoutSeconds", "initialDelaySeconds"):
        value = getattr(override, key)
        if value is not None:
            out[key] = value
    return out


def extra_volume_mounts(spec: Spec) -> list[dict[str, Any]]:
    return [copy.deepcopy(m) for m in spec.container.volumeMounts]


def extra_volumes(spec: Spec) -> list[dict[str, Any]]:
    return [copy.deepcopy(v) for v in spec.pod.volumes]


def topology_spread(spec: Spec, owner: Owner) -> list[dict[str, Any]]:
    """The user's constraints, with the fields the API requires defaulted (maxSkew 1,
    whenUnsatisfiable DoNotSchedule) and a labelSelector counting this service's own pods (the
    schema offers no other selector)."""
    out = []
    for constraint in spec.pod.topologySpreadConstraints:
        item = copy.deepcopy(constraint)
        item.setdefault("maxSkew", 1)
        item.setdefault("whenUnsatisfiable", "DoNotSchedule")
        item.setdefault("labelSelector", {"matchLabels": selector_labels(owner)})
        out.append(item)
    return out


def pod_fields(spec: Spec, owner: Owner) -> dict[str, Any]:
    """Pod spec fields set only when the user set them."""
    pod = spec.pod
    out: dict[str, Any] = {}
    for key in ("serviceAccountName", "priorityClassName", "runtimeClassName"):
        if getattr(pod, key):
            out[key] = getattr(pod, key)
    spread = topology_spread(spec, owner)
    if spread:
        out["topologySpreadConstraints"] = spread
    return out


def template_metadata(spec: Spec, owner: Owner) -> dict[str, Any]:
    """Pod template labels: CR labels < spec.pod.labels < the operator's (selector) labels."""
    meta: dict[str, Any] = {
        "labels": {**propagated_labels(owner), **spec.pod.labels, **operator_labels(owner)}
    }
    if spec.pod.annotations:
        meta["annotations"] = dict(spec.pod.annotations)
    return meta
