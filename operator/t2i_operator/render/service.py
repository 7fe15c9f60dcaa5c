"""The Service in front of the server pods (the tutorial's `svc/<release>` on port 5000)."""

from __future__ import annotations

from typing import Any

from t2i_operator.render.common import Owner, namespaced_meta, selector_labels
from t2i_operator.spec import Spec


def render_service(spec: Spec, owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": namespaced_meta(owner, owner.name),
        "spec": {
            "type": spec.service.type,
            "selector": selector_labels(owner),
            "ports": [
                {
                    "name": "http",
                    "port": spec.service.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                }
            ],
        },
    }
