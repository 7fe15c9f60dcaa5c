"""Operator benchmark: apply->Ready latency, idle API writes, and time for 500 CRs to be Ready.

A script, not a test: it prints figures for BENCHMARKS.md. It starts its own local control
plane (hack/cluster/localcluster.py) in a temporary state dir unless --kubeconfig is given, runs
the operator as a separate process under the shipped RBAC (a TokenRequest token for
t2i-system/t2i-operator, exactly like the e2e suite), and stops everything it started at the end,
also on error. Readiness is observed with a watch on the custom resources, never with sleeps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "operator"), str(ROOT / "hack" / "cluster")]

import localcluster  # noqa: E402
import urllib3  # noqa: E402
from kubernetes import client, config, watch  # noqa: E402
from t2i_operator.spec import API_GROUP as GROUP  # noqa: E402
from t2i_operator.spec import API_VERSION as VERSION  # noqa: E402
from t2i_operator.spec import KIND, PLURAL  # noqa: E402

from hack.support import (  # noqa: E402
    Kubectl,
    OperatorProcess,
    audit_events,
    install_crd_and_rbac,
    is_ready,
    mutating_requests,
    operator_kubeconfig,
)

# Extra fake g8i nodes so 550 single-replica pods fit (the stock 4 nodes hold 110 pods each).
EXTRA_NODES = 4


def body(name: str) -> dict:
    """The smallest valid CR: one replica with small requests so many fit on a fake node."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "placement": {"pool": "Any"},
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "200m", "memory": "256Mi"},
            },
        },
    }


class ReadyWatch:
    """Records the first time each CR of a namespace is seen with Ready=True."""

    def __init__(self, api: client.CustomObjectsApi, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.ready: dict[str, float] = {}
        self.cond = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        rv = None
        while not self.stopped:
            w = watch.Watch()
            try:
                kw = {"resource_version": rv} if rv else {}
                for ev in w.stream(
                    self.api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    timeout_seconds=60,
                    **kw,
                ):
                    obj = ev["object"]
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if ev["type"] in ("ADDED", "MODIFIED") and is_ready(obj):
                        with self.cond:
                            self.ready.setdefault(obj["metadata"]["name"], time.monotonic())
                            self.cond.notify_all()
                    if self.stopped:
                        return
            except client.ApiException as e:
                if e.status == 410:  # expired resourceVersion: relist
                    rv = None
                    continue
                raise
            except urllib3.exceptions.HTTPError:
                if self.stopped:  # the cluster is going down
                    return

    def wait(self, names: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not names <= self.ready.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(names - self.ready.keys())
                    raise TimeoutError(f"{len(missing)} CRs not Ready, e.g. {missing[:5]}")
                self.cond.wait(left)

    def stop(self) -> None:
        self.stopped = True


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def requests_by_user(audit: Path, since: float, users: tuple[str, ...]) -> dict[str, dict]:
    """Completed API requests per user and verb after `since` (from the audit log)."""
    counts: dict[str, dict] = {}
    for event in audit_events(audit, since):
        user = (event.get("user") or {}).get("username", "")
        if user.startswith(users):
            verbs = counts.setdefault(user, {})
            verbs[event["verb"]] = verbs.get(event["verb"], 0) + 1
    return counts


HANDLED = "t2i.dev/last-handled-configuration"


def wait_until_handled(api: client.CustomObjectsApi, namespace: str, name: str) -> None:
    """Watch the CR until kopf's diff-base annotation shows its handlers have all finished."""
    w = watch.Watch()
    for event in w.stream(
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        field_selector=f"metadata.name={name}",
        timeout_seconds=60,
    ):
        annotations = event["object"]["metadata"].get("annotations") or {}
        if HANDLED in annotations:  # written by kopf's final patch, with the progress purge
            w.stop()
            return
    raise TimeoutError(f"{namespace}/{name}: kopf did not finish handling it within 60 s")


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def bench(
    kc: Kubectl,
    audit: Path | None,
    work: Path,
    args: argparse.Namespace,
    cluster_pids: dict[str, int],
) -> None:
    """(a) latency, (b) idle writes, (c) a burst: one operator process for all three."""
    install_crd_and_rbac(kc)
    for i in range(EXTRA_NODES):
        kc.apply(localcluster.node(f"bench-g8i-{i}", localcluster.NODES["g8i-node-0"]))
    op = OperatorProcess(operator_kubeconfig(kc, work / "operator.kubeconfig"), work / "op.log")
    config.load_kube_config(config_file=kc.kubeconfig)
    api = client.CustomObjectsApi()
    ns_a, ns_c = "t2i-bench-latency", "t2i-bench-scale"
    for ns in (ns_a, ns_c):
        kc("create", "namespace", ns)
    op.start()
    try:
        # Warm-up CR (not counted) so (a) does not include the operator's start-up.
        wc = ReadyWatch(api, ns_c)
        api.create_namespaced_custom_object(GROUP, VERSION, ns_c, PLURAL, body("warmup"))
        wc.wait({"warmup"}, 120)
        latency_crs = measure_latency(api, ns_a, args.latency_crs)
        # The idle window opens once kopf has finished its bookkeeping on the last CR (its
        # diff-base annotation is written just after the status that made the CR Ready).
        wait_until_handled(api, ns_a, f"lat-{args.latency_crs - 1:03d}")
        measure_idle_writes(audit, args.idle_seconds, latency_crs)
        pids = {**cluster_pids, "operator": op.proc.pid, "this script": os.getpid()}
        measure_burst(api, wc, ns_c, args, pids, audit)
    finally:
        op.stop()
        print(f"operator log: {op.log_path}", flush=True)


def measure_latency(api: client.CustomObjectsApi, ns: str, count: int) -> int:
    """(a) apply->Ready latency, one CR at a time (unloaded latency). Returns the CR count."""
    watch = ReadyWatch(api, ns)
    lat = []
    for i in range(count):
        name = f"lat-{i:03d}"
        t0 = time.monotonic()
        api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body(name))
        watch.wait({name}, 120)
        lat.append(watch.ready[name] - t0)
    watch.stop()
    print(
        f"(a) apply->Ready over {len(lat)} CRs: p50 {percentile(lat, 50):.2f} s, "
        f"p95 {percentile(lat, 95):.2f} s, max {max(lat):.2f} s, "
        f"mean {statistics.mean(lat):.2f} s",
        flush=True,
    )
    return len(lat)


def measure_idle_writes(audit: Path | None, idle_seconds: float, ready_crs: int) -> None:
    """(b) mutating requests by the operator's identity while nothing changes."""
    if audit is None:
        print("(b) skipped: no audit log for an external cluster (--audit-log)", flush=True)
        return
    since = time.time()
    time.sleep(idle_seconds)  # the measured idle window itself
    writes = mutating_requests(audit, since)
    verbs = sorted({f"{e['verb']} {(e.get('objectRef') or {}).get('resource')}" for e in writes})
    print(
        f"(b) mutating requests by the operator in {idle_seconds:.0f} s idle with "
        f"{ready_crs} Ready CRs (operator resync every 5 s, as in the e2e harness): "
        f"{len(writes)}" + (f" {verbs}" if verbs else ""),
        flush=True,
    )


def measure_burst(
    api: client.CustomObjectsApi,
    watch: ReadyWatch,
    ns: str,
    args: argparse.Namespace,
    pids: dict[str, int],
    audit: Path | None,
) -> None:
    """(c) a burst of N CRs: time until all are Ready, CPU per process, requests per user."""
    names = [f"scale-{i:03d}" for i in range(args.scale_crs)]
    cpu_before, wall_before = process_cpu(pids), time.time()
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body(n)),
                names,
            )
        )
    created = time.monotonic() - t0
    try:
        watch.wait(set(names), args.scale_timeout)
    except TimeoutError as e:
        done = len(set(names) & watch.ready.keys())
        watch.stop()
        print(
            f"(c) NOT all Ready after {args.scale_timeout:.0f} s: {done} of "
            f"{len(names)} were seen Ready ({e})",
            flush=True,
        )
        raise SystemExit(1) from None
    total = max(watch.ready[n] for n in names) - t0
    cpu_after = process_cpu(pids)
    watch.stop()
    print(
        f"(c) {len(names)} CRs all Ready in {total:.1f} s (creating them took {created:.1f} s)",
        flush=True,
    )
    ready_at = sorted(watch.ready[n] - t0 for n in names)
    quartiles = [ready_at[len(ready_at) * q // 4 - 1] for q in (1, 2, 3, 4)]
    print(
        "    Ready by: "
        + ", ".join(f"{25 * (i + 1)} % at {t:.1f} s" for i, t in enumerate(quartiles)),
        flush=True,
    )
    used = {name: cpu_after[name] - cpu_before[name] for name in pids}
    print(
        f"    CPU seconds during (c) ({2 * total:.0f} available on 2 cores): "
        + ", ".join(
            f"{name} {sec:.1f}" for name, sec in sorted(used.items(), key=lambda kv: -kv[1])
        ),
        flush=True,
    )
    if audit is not None:
        users = ("system:serviceaccount:t2i-system", "system:kube-", "system:node")
        for user, verbs in sorted(requests_by_user(audit, wall_before, users).items()):
            print(f"    requests by {user}: {dict(sorted(verbs.items()))}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubeconfig", help="use this (admin) cluster instead of starting one")
    ap.add_argument("--kubectl", default="kubectl", help="kubectl binary with --kubeconfig")
    ap.add_argument("--audit-log", type=Path, help="apiserver audit log (external cluster)")
    ap.add_argument("--latency-crs", type=int, default=50)
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--scale-crs", type=int, default=500)
    ap.add_argument("--scale-timeout", type=float, default=600)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="t2i-bench-"))
    cluster = None
    try:
        if args.kubeconfig:
            kc = Kubectl(args.kubectl, args.kubeconfig)
            audit = args.audit_log
        else:
            cluster = localcluster.LocalCluster(work / "cluster")
            cluster.up()
            kc = Kubectl(str(cluster.kubectl), str(cluster.kubeconfig))
            audit = cluster.audit_log
        bench(kc, audit, work, args, cluster.pids() if cluster else {})
    finally:
        if cluster is not None:
            cluster.down()
        print(f"work dir: {work}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
