"""KEDA (operator + external-metrics API server) and Prometheus on the real node, for the
autoscaling tests and hack/bench_autoscale.py (issue 19).

- KEDA's two static binaries come from hack/keda.sh (Go modules, cached). They run as pods on the
  real node: the metrics API server must be reachable at a pod IP (the aggregator dials endpoint
  IPs; EndpointSlices refuse loopback). The image is the node's own static `pause` image with the
  binary directory mounted read-only (hostPath): a static Go binary needs nothing else, and no
  second 400 MB image has to be built and imported.
- Certificates: one CA and one serving+client certificate (the operator's gRPC metrics service
  and the adapter's mTLS client), made with the local cluster's pki.signed_cert helper; KEDA's own
  rotation is off. The APIService skips TLS verification of the adapter (test cluster only).
- No DNS and no kube-proxy here: the adapter finds the operator by a hostAlias to its pod IP,
  the pods reach the API server at the bridge gateway (hack/cluster/forward.py), and Prometheus
  (Debian's 2.42, a host process) listens on the gateway address for KEDA's operator.
- RBAC: cluster-admin for KEDA's ServiceAccount — this is test scaffolding for a third-party
  component, not something the project ships (deploy/ has no KEDA).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import localcluster
import pki
import realnode
from operator_harness import Kubectl, wait_for

ROOT = Path(__file__).resolve().parents[2]
NS = "keda"
OPERATOR_DNS = "keda-operator.keda.svc.cluster.local"


def keda_dir() -> Path:
    """hack/keda.sh's cache dir (binaries + CRDs); builds them on a cold cache (~6 min)."""
    r = subprocess.run(
        ["bash", str(ROOT / "hack" / "keda.sh")], capture_output=True, text=True, timeout=3600
    )
    if r.returncode:
        raise RuntimeError(f"hack/keda.sh failed:\n{r.stderr[-3000:]}")
    return Path(r.stdout.strip().splitlines()[-1])


def make_certs(d: Path) -> dict[str, str]:
    pki.make_ca(d, "keda-test-ca")
    sans = ",".join(
        f"DNS:{n}"
        for n in (OPERATOR_DNS, "keda-operator.keda.svc", "keda-metrics-apiserver.keda.svc")
    )
    pki.signed_cert(
        d,
        "tls",
        "/CN=keda-operator",
        f"subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    return {
        "ca.crt": (d / "ca.crt").read_text(),
        "tls.crt": (d / "tls.crt").read_text(),
        "tls.key": (d / "tls.key").read_text(),
    }


def _pod_spec(
    node: realnode.RealNode, image: str, bin_dir: Path, binary: str, args: list[str], **extra: Any
) -> dict[str, Any]:
    probe = (
        {"readinessProbe": {"httpGet": {"path": "/readyz", "port": 8081}, "periodSeconds": 2}}
        if binary == "keda-operator"
        else {}
    )
    return {
        "serviceAccountName": "keda-operator",
        "nodeSelector": {"kubernetes.io/hostname": realnode.NODE_NAME},
        "tolerations": [{"key": realnode.TAINT_KEY, "operator": "Exists"}],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
        "containers": [
            {
                "name": binary,
                "image": image,
                "imagePullPolicy": "Never",
                "command": [f"/keda/{binary}"],
                "args": args,
                "env": [
                    {"name": "KUBERNETES_SERVICE_HOST", "value": node.gateway},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": str(node.api_port)},
                    {"name": "WATCH_NAMESPACE", "value": ""},
                    {"name": "KEDA_CLUSTER_OBJECT_NAMESPACE", "value": NS},
                    {"name": "POD_NAMESPACE", "value": NS},
                    {"name": "POD_NAME", "value": binary},
                    {"name": "OPERATOR_NAME", "value": "keda-operator"},
                ],
                **probe,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                },
                "volumeMounts": [
                    {"name": "bin", "mountPath": "/keda", "readOnly": True},
                    {"name": "certs", "mountPath": "/certs", "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {"name": "bin", "hostPath": {"path": str(bin_dir), "type": "Directory"}},
            {"name": "certs", "secret": {"secretName": "kedaorg-certs"}},
            {"name": "tmp", "emptyDir": {}},
        ],
        **extra,
    }


def _pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
        "spec": spec,
    }


def base_manifests(certs: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "keda-operator", "namespace": NS},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "keda-test-cluster-admin"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "keda-operator", "namespace": NS}],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "kedaorg-certs", "namespace": NS},
            "stringData": certs,
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "keda-metrics-apiserver", "namespace": NS},
            "spec": {
                "selector": {"app": "keda-metrics-apiserver"},
                "ports": [{"name": "https", "port": 443, "targetPort": 6443}],
            },
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
            "spec": {
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "service": {"name": "keda-metrics-apiserver", "namespace": NS, "port": 443},
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


@dataclass
class Prometheus:
    """Debian's prometheus as a host process scraping the t2i-server pods by pod IP."""

    state: Path
    kubeconfig: Path
    listen: str  # host:port on the bridge gateway (KEDA's operator pod queries it there)
    proc: subprocess.Popen | None = None
    log: Any = field(default=None, repr=False)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    def config(self) -> dict[str, Any]:
        """Debian's build has no kubernetes_sd_configs (`field kubernetes_sd_configs not found
        in type config.ScrapeConfig`): the pods are file_sd targets, kept current by
        sync_targets() from the API (what kubernetes_sd with the relabelling in
        docs/operations.md would give: namespace, service = the instance label, pod)."""
        return {
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "scrape_configs": [
                {
                    "job_name": "t2i",
                    "file_sd_configs": [
                        {"files": [str(self.state / "targets.json")], "refresh_interval": "2s"}
                    ],
                }
            ],
        }

    def sync_targets(self, kube: Kubectl) -> None:
        """Write the Running t2i-server pods as scrape targets (atomically: rename)."""
        pods: list[dict[str, Any]] = []
        out = kube.run(
            "get", "pods", "-A", "-l", "app.kubernetes.io/name=t2i-server", "-o", "json",
            check=False,
        )  # fmt: skip
        if out.returncode == 0:
            pods = json.loads(out.stdout)["items"]
        targets = [
            {
                "targets": [f"{p['status']['podIP']}:5000"],
                "labels": {
                    "namespace": p["metadata"]["namespace"],
                    "service": p["metadata"]["labels"].get("app.kubernetes.io/instance", ""),
                    "pod": p["metadata"]["name"],
                },
            }
            for p in pods
            if (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")
        ]
        tmp = self.state / "targets.json.tmp"
        tmp.write_text(json.dumps(targets))
        tmp.rename(self.state / "targets.json")

    def keep_targets(self, kube: Kubectl) -> None:
        """A daemon thread re-syncing the targets every second until stop()."""
        self.sync_targets(kube)

        def loop() -> None:
            while not self.stopping.wait(1.0):
                self.sync_targets(kube)

        threading.Thread(target=loop, daemon=True).start()

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        cfg = self.state / "prometheus.yml"
        cfg.write_text(json.dumps(self.config(), indent=1))
        self.log = open(self.state / "prometheus.log", "a")  # noqa: SIM115 (process lifetime)
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={cfg}",
                f"--storage.tsdb.path={self.state / 'data'}",
                f"--web.listen-address={self.listen}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        import urllib.parse
        import urllib.request

        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())["data"]["result"]

    def stop(self) -> None:
        self.stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.log is not None:
            self.log.close()


@dataclass
class KedaStack:
    kube: Kubectl
    cluster: localcluster.LocalCluster
    work: Path
    prometheus: Prometheus | None = None

    def up(self, timeout: float = 300) -> KedaStack:
        node = self.cluster.node
        assert node is not None
        kdir = keda_dir()
        for crd in sorted((kdir / "crds").glob("*.yaml")):
            self.kube("apply", "--server-side", "-f", str(crd))
        self.prometheus = Prometheus(
            self.work / "prometheus",
            self.cluster.kubeconfig,
            f"{node.gateway}:{realnode.free_port_on(node.gateway)}",
        )
        self.prometheus.start()
        wait_for(self._prometheus_ready, "Prometheus ready", timeout=60)
        self.prometheus.keep_targets(self.kube)
        certs = make_certs(self.work / "certs")
        for obj in base_manifests(certs):
            self.kube.apply(obj)
        pause, _ = realnode.pause_image()
        bin_dir = self._world_readable_bin(kdir / "bin")
        self.kube.apply(
            _pod(
                "keda-operator",
                _pod_spec(
                    node,
                    pause,
                    bin_dir,
                    "keda-operator",
                    [
                        "--leader-elect=false",
                        "--enable-cert-rotation=false",
                        "--enable-webhook-patching=false",
                        "--enable-apiservice-patching=false",
                        "--cert-dir=/certs",
                        "--zap-log-level=info",
                    ],
                ),
            )
        )
        op = wait_for(
            lambda: self._ready_pod("keda-operator"), "KEDA operator pod Ready", timeout=timeout
        )
        self.kube.apply(
            _pod(
                "keda-metrics-apiserver",
                _pod_spec(
                    node,
                    pause,
                    bin_dir,
                    "keda-adapter",
                    [
                        "--secure-port=6443",
                        "--cert-dir=/certs",
                        "--tls-cert-file=/certs/tls.crt",
                        "--tls-private-key-file=/certs/tls.key",
                        f"--metrics-service-address={OPERATOR_DNS}:9666",
                    ],
                    hostAliases=[{"ip": op["status"]["podIP"], "hostnames": [OPERATOR_DNS]}],
                ),
            )
        )
        wait_for(
            lambda: self._ready_pod("keda-metrics-apiserver"),
            "KEDA metrics API server pod Ready",
            timeout=timeout,
        )
        wait_for(self._apiservice_available, "external.metrics.k8s.io Available", timeout=120)
        return self

    def _world_readable_bin(self, src: Path) -> Path:
        """The binaries where uid 65532 can reach them (the cache is under root's 0700 home):
        hard links when on the same filesystem, else copies."""
        self.work.chmod(0o755)
        d = self.work / "bin"
        d.mkdir(mode=0o755, exist_ok=True)
        for b in src.iterdir():
            target = d / b.name
            if not target.exists():
                try:
                    os.link(b, target)
                except OSError:
                    shutil.copy2(b, target)
            target.chmod(0o755)
        return d

    def _prometheus_ready(self) -> bool:
        assert self.prometheus is not None and self.prometheus.proc is not None
        if self.prometheus.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited; see {self.prometheus.state}/prometheus.log")
        try:
            import urllib.request

            with urllib.request.urlopen(f"{self.prometheus.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def _ready_pod(self, name: str) -> dict[str, Any] | None:
        pod = self.kube.get("pod", name, NS)
        conds = ((pod or {}).get("status") or {}).get("conditions") or []
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            return pod
        return None

    def _apiservice_available(self) -> bool:
        svc = self.kube.get("apiservice", "v1beta1.external.metrics.k8s.io")
        conds = ((svc or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Available" and c["status"] == "True" for c in conds)

    def logs(self) -> str:
        node = self.cluster.node
        out = []
        for pod, c in (
            ("keda-operator", "keda-operator"),
            ("keda-metrics-apiserver", "keda-adapter"),
        ):
            for d in sorted(node.pod_logs.glob(f"{NS}_{pod}_*/{c}")):
                for f in sorted(d.glob("*.log")):
                    out.append(f"--- {pod}\n" + f.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def down(self) -> None:
        self.kube.run("delete", "namespace", NS, "--wait=false", check=False)
        self.kube.run(
            "delete", "apiservice", "v1beta1.external.metrics.k8s.io", "--ignore-not-found",
            check=False,
        )  # fmt: skip
        if self.prometheus is not None:
            self.prometheus.stop()
        shutil.rmtree(self.work / "bin", ignore_errors=True)
