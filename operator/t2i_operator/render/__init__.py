"""PURE rendering: a defaulted Spec plus the owner's identity → the desired child manifests.

No I/O, no kopf, no kubernetes client: every function here is a plain dict builder, unit-tested
without a cluster. The order of the returned list is the order apply.py writes them in
(credentials and storage before the Deployment that mounts them).
"""

from __future__ import annotations

from typing import Any

from t2i_operator.render.common import Credentials, Owner
from t2i_operator.render.deployment import render_deployment
from t2i_operator.render.hpa import render_hpa
from t2i_operator.render.keda import render_scaled_object
from t2i_operator.render.monitoring import render_service_monitor, wants_service_monitor
from t2i_operator.render.pdb import pdb_wanted, render_pdb
from t2i_operator.render.service import render_service
from t2i_operator.render.storage import render_oss_storage
from t2i_operator.spec import Spec

__all__ = ["Credentials", "Owner", "render_all"]


def render_all(
    spec: Spec,
    owner: Owner,
    credentials: Credentials | None = None,
    service_monitors: bool = False,
) -> list[dict[str, Any]]:
    """Every child the spec asks for. OSS needs the user's AccessKey pair (`credentials`);
    `service_monitors`: the cluster serves monitoring.coreos.com/v1 ServiceMonitors."""
    out: list[dict[str, Any]] = []
    if spec.model.source == "OSS":
        if credentials is None:
            raise ValueError("OSS model source needs the credentials read from the user's Secret")
        out.extend(render_oss_storage(spec, owner, credentials))
    out.append(render_deployment(spec, owner))
    out.append(render_service(spec, owner))
    if spec.autoscaling.keda:
        out.append(render_scaled_object(spec, owner))  # KEDA makes (and owns) the HPA
    elif spec.autoscaling.enabled:
        out.append(render_hpa(spec, owner))
    if pdb_wanted(spec):
        out.append(render_pdb(spec, owner))
    if wants_service_monitor(spec, service_monitors):
        out.append(render_service_monitor(spec, owner))
    return out
