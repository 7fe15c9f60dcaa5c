"""Autoscaling for real (issue 19): KEDA's operator and metrics API server (built from Go modules)
as pods on the real node, registered through the API aggregation layer; Debian's Prometheus
scraping the server pods; the cluster's own HPA controller. Load on the server pods raises
t2i_queue_depth_images → a second replica becomes Ready → load stops → back to one replica. The
operator never writes Deployment.spec.replicas meanwhile (managedFields)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
from keda_stack import KedaStack
from operator_harness import wait_for
from rn_helpers import TUTORIAL_BODY, post_json, ready_pods, real_t2i

NAME = "sd"
# hack/bench_autoscale.py sets this: the test then records WHEN things happened (no assertion
# on durations: timings belong to the benchmark, which prints them).
EVENTS_FILE = os.environ.get("T2I_AUTOSCALE_EVENTS")


class Events(dict):
    def mark(self, what: str) -> None:
        self[what] = time.monotonic()
        if EVENTS_FILE:
            Path(EVENTS_FILE).write_text(json.dumps(self))


@pytest.fixture(scope="module")  # torn down before test_zz_down checks for leftovers
def keda(real_cluster, kube) -> Iterator[KedaStack]:
    work = Path(tempfile.mkdtemp(prefix="t2i-keda-"))
    stack = KedaStack(kube, real_cluster, work)
    try:
        stack.up()
        yield stack
    except Exception:
        print(stack.logs())
        raise
    finally:
        stack.down()
        shutil.rmtree(work, ignore_errors=True)


def autoscaling(prometheus_url: str) -> dict:
    return {
        "enabled": True,
        "mode": "QueueDepth",
        "minReplicas": 1,
        "maxReplicas": 2,
        "scaleDownStabilizationSeconds": 10,  # shortened for the test (default 300)
        "queueDepth": {"prometheusServerAddress": prometheus_url, "targetPerReplica": 1},
    }


class Load:
    """Clients posting the tutorial request to every Ready pod until stopped."""

    def __init__(self, kube, namespace: str, clients: int = 6) -> None:
        self.kube, self.namespace, self.clients = kube, namespace, clients
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.ok = 0

    def _run(self, i: int) -> None:
        while not self.stop.is_set():
            pods = ready_pods(self.kube, self.namespace, NAME)
            if not pods:
                continue
            ip = pods[i % len(pods)]["status"]["podIP"]
            try:
                status, _ = post_json(f"http://{ip}:5000/api/text2image", TUTORIAL_BODY, 300)
                self.ok += status == 200
            except (urllib.error.URLError, OSError):
                pass  # a pod going away; the next loop picks a Ready one

    def __enter__(self) -> Load:
        for i in range(self.clients):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=330)


def replicas_owners(dep: dict) -> set[str]:
    return {
        m["manager"]
        for m in dep["metadata"].get("managedFields") or []
        if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
    }


def deployment(kube, namespace: str) -> dict:
    return kube.json("get", "deployment", NAME, "-n", namespace, "--show-managed-fields")


def test_queue_depth_scales_up_under_load_and_back_down(
    real_cluster, operator_pod, images, model_dir, kube, namespace, keda
):
    prom = keda.prometheus
    events = Events()
    kube.apply(
        real_t2i(
            NAME,
            namespace,
            images["server"],
            model_dir,
            autoscaling=autoscaling(prom.url),
            server={"steps": 1, "maxBatch": 1},
        )
    )
    so = wait_for(lambda: kube.get("scaledobject", NAME, namespace), "the ScaledObject")
    assert so["spec"]["scaleTargetRef"]["name"] == NAME
    wait_for(lambda: len(ready_pods(kube, namespace, NAME)) == 1, "one Ready replica", timeout=600)
    wait_for(
        lambda: kube.get("hpa", f"keda-hpa-{NAME}", namespace),
        "KEDA's HPA",
        timeout=120,
        explain=keda.logs,
    )
    query = f'sum(t2i_queue_depth_images{{namespace="{namespace}",service="{NAME}"}})'
    wait_for(lambda: prom.query(query), "Prometheus scraping the server pod", timeout=120)

    events.mark("load_start")
    with Load(kube, namespace) as load:
        wait_for(
            lambda: any(float(r["value"][1]) >= 2 for r in prom.query(query)),
            "the queue to build up (as Prometheus sees it)",
            timeout=300,
        )
        wait_for(
            lambda: len(ready_pods(kube, namespace, NAME)) == 2,
            "a second Ready replica (HPA on KEDA's external metric)",
            timeout=900,
            explain=lambda: (kube.get("hpa", f"keda-hpa-{NAME}", namespace) or {}).get("status"),
        )
        events.mark("second_replica_ready")
    events.mark("load_stop")
    assert load.ok > 0
    wait_for(
        lambda: deployment(kube, namespace)["spec"]["replicas"] == 1,
        "scale back down to one replica when the queue is empty",
        timeout=600,
        explain=lambda: (kube.get("hpa", f"keda-hpa-{NAME}", namespace) or {}).get("status"),
    )
    events.mark("scaled_down")
    owners = replicas_owners(deployment(kube, namespace))
    # The operator never sent replicas in this mode (the HPA writes them through the Deployment's
    # scale subresource, which records no owner of the main resource's field here).
    assert "t2i-operator" not in owners, owners
    cr = kube.get("t2i", NAME, namespace)
    assert cr["status"]["autoscaler"] == "KEDA"
