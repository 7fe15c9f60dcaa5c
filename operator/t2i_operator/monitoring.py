"""Is the Prometheus Operator's ServiceMonitor API served? Checked at start and re-checked.

Detection reads API discovery (`GET /apis/monitoring.coreos.com/v1`), which every authenticated
identity may read (the built-in system:discovery role): no RBAC on CustomResourceDefinitions, no
cluster-wide watch. A thread re-checks every --monitoring-recheck-seconds; when the answer
changes (the Prometheus Operator installed or removed) every resource gets a full pass, which
renders or prunes its ServiceMonitor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubernetes.client.exceptions import ApiException

from t2i_operator.kube import Kube

GROUP_VERSION_PATH = "/apis/monitoring.coreos.com/v1"
RESOURCE = "servicemonitors"
log = logging.getLogger(__name__)
_state = {"available": False}


def available() -> bool:
    """The last answer (False until the first check)."""
    return _state["available"]


def served(kube: Kube) -> bool:
    """One discovery request: the group/version exists and lists servicemonitors."""
    try:
        resources = kube.request("GET", GROUP_VERSION_PATH).get("resources") or []
    except ApiException as e:
        if e.status in (404, 503):  # not installed / aggregated API not ready
            return False
        raise
    return any(r.get("name") == RESOURCE for r in resources)


def check(kube: Kube) -> bool:
    """Re-check; True when the answer changed."""
    now = served(kube)
    changed = now != _state["available"]
    _state["available"] = now
    if changed:
        log.info("ServiceMonitor API %s", "served" if now else "not served")
    return changed


def watch(
    kube: Kube, interval: float, on_change: Callable[[], None], stop: threading.Event
) -> threading.Thread:
    """Re-check every `interval` seconds in a daemon thread; `on_change` after a change."""

    def loop() -> None:
        while not stop.wait(interval):
            try:
                if check(kube):
                    on_change()
            except Exception:  # a failed check is retried at the next interval
                log.exception("ServiceMonitor API re-check failed")

    thread = threading.Thread(target=loop, name="servicemonitor-recheck", daemon=True)
    thread.start()
    return thread
