"""The ServiceMonitor (Prometheus Operator, monitoring.coreos.com/v1) scraping the Service.

Rendered only while the cluster serves that API (monitoring.py detects it) and the spec does not
opt out (spec.monitoring.serviceMonitor: false). It selects the Service by the same labels the
Service selects the pods with, on the Service's named port `http`, path /metrics.
"""

from __future__ import annotations

from typing import Any

from t2i_operator.render.common import Owner, namespaced_meta, selector_labels
from t2i_operator.spec import Spec

API_VERSION = "monitoring.coreos.com/v1"
KIND = "ServiceMonitor"


def wants_service_monitor(spec: Spec, available: bool) -> bool:
    return available and spec.monitoring.serviceMonitor


def render_service_monitor(spec: Spec, owner: Owner) -> dict[str, Any]:
    meta = namespaced_meta(owner, owner.name)
    if spec.monitoring.labels:
        # e.g. kube-prometheus-stack selects ServiceMonitors by `release: <its release>`;
        # ours win on a clash so the object stays findable as our child.
        meta["labels"] = {**spec.monitoring.labels, **meta["labels"]}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector_labels(owner)},
            "namespaceSelector": {"matchNames": [owner.namespace]},
            "endpoints": [
                {"port": "http", "path": "/metrics", "interval": spec.monitoring.interval}
            ],
        },
    }
