"""Entry point `t2i-operator`: kopf settings, one API client, then kopf's event loop.

Run ONE replica with --standalone (the default here): kopf's peering would need KopfPeering
objects and RBAC for them, and two equal-priority peers freeze each other. For an active/standby
pair, deploy the peering CRDs and pass --peering NAME with different --priority values.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

import kopf
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from t2i_operator import attest, handlers, monitoring, reconcile  # handlers: registers them
from t2i_operator.diffbase import DigestDiffBaseStorage
from t2i_operator.kube import Kube
from t2i_operator.render import deployment
from t2i_operator.render.common import PV_FINALIZER
from t2i_operator.spec import API_GROUP, API_VERSION, PLURAL

# Set by main() from its flags, read by the startup handler.
OPTIONS: dict[str, Any] = {"monitoring_recheck_seconds": 60.0, "namespaces": []}
_stop = threading.Event()


def load_configuration() -> k8s.Configuration:
    """In-cluster ServiceAccount config, else the kubeconfig (for running it locally)."""
    config = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=config)
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=config)
    return config


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf's own bookkeeping lives in annotations, never in .status (which is ours and schema'd).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="t2i.dev")
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(
        prefix="t2i.dev", key="last-handled-configuration"
    )
    settings.persistence.finalizer = PV_FINALIZER
    # Only warnings become Events: "handler succeeded" events would be writes on every resync.
    settings.posting.level = logging.WARNING
    # No runtime watching of CRDs/namespaces (needs cluster-wide list/watch on both): the CRD
    # must be installed before the operator starts, as deploy/kustomization.yaml does.
    settings.scanning.disabled = True
    settings.execution.max_workers = 8
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    memo.kube = Kube(load_configuration())
    start_monitoring_detection(memo.kube)


def start_monitoring_detection(kube: Kube) -> None:
    """Ask once now (before the first pass renders), then re-check in the background."""
    try:
        monitoring.check(kube)
    except Exception:  # not fatal: no ServiceMonitor until a re-check succeeds
        logging.getLogger(__name__).exception("ServiceMonitor API check failed")
    interval = OPTIONS["monitoring_recheck_seconds"]
    if interval > 0:
        namespaces = list(OPTIONS["namespaces"])
        monitoring.watch(kube, interval, lambda: reconcile.reconcile_all(kube, namespaces), _stop)


@kopf.on.cleanup()
def stop_background(**_: Any) -> None:
    _stop.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="t2i-operator", description=__doc__)
    parser.add_argument("--namespace", "-n", action="append", help="watch only these (repeat)")
    parser.add_argument("--peering", help="kopf peering name (default: standalone)")
    parser.add_argument("--priority", type=int, default=0, help="peering priority")
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz")
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=300,
        help="re-run every CR's pass this often (0 = never); writes nothing when nothing changed",
    )
    parser.add_argument(
        "--attestation-seconds",
        type=float,
        default=300,
        help="ask the pods of TDX services for TD evidence this often (0 = never)",
    )
    parser.add_argument(
        "--monitoring-recheck-seconds",
        type=float,
        default=60,
        help="re-check this often whether the cluster serves ServiceMonitors (0 = only at start)",
    )
    parser.add_argument(
        "--configfs-tsm-host-path",
        default=deployment.TSM_HOST_PATH,
        help="the nodes' configfs-tsm report directory, mounted into the pods of TDX services "
        "with spec.placement.tdxEvidence.configfsTsm (the server sees it at "
        f"{deployment.TSM_MOUNT_PATH})",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    deployment.set_configfs_tsm_host_path(args.configfs_tsm_host_path)
    OPTIONS["monitoring_recheck_seconds"] = args.monitoring_recheck_seconds
    OPTIONS["namespaces"] = args.namespace or []
    if args.resync_seconds > 0:
        kopf.timer(
            API_GROUP,
            API_VERSION,
            PLURAL,
            id="resync",
            interval=args.resync_seconds,
            initial_delay=args.resync_seconds,
            when=handlers.has_unwatched_input,
        )(handlers.resync)
    if args.attestation_seconds > 0:
        kopf.timer(
            API_GROUP,
            API_VERSION,
            PLURAL,
            id="attestation",
            interval=args.attestation_seconds,
            when=attest.is_tdx,
        )(attest.attestation_timer)
    # kopf's formatter prefixes object messages with [namespace/name].
    kopf.configure(verbose=args.verbose, log_prefix=True)
    kopf.run(
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=args.priority,
        namespaces=args.namespace or [],
        clusterwide=not args.namespace,
        liveness_endpoint=args.liveness or None,
    )


if __name__ == "__main__":
    main()
