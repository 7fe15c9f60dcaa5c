"""A real local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler,
kwok) started as processes on free 127.0.0.1 ports from binaries built by build.sh; with
`--real-node`, also a real kubelet node (containerd, runc, CNI: realnode.py).

Stdlib only, so both pytest and a person (`python hack/cluster/localcluster.py up|down|status|env`)
can use it. Every process it starts is recorded in <state>/pids and stopped by pid on `down`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for hack.support
import components
import realnode
from pki import (
    aggregation_flags,
    client_cert,
    ensure_front_proxy_pki,
    kubeconfig_text,
    make_pki,
)

from hack import support
from hack.support import free_port

CACHE = Path(os.environ.get("T2I_CACHE", Path.home() / ".cache" / "t2i-operator"))
HERE = Path(__file__).resolve().parent
# Non-admin identity with no RBAC of its own: tests bind it to what they want to prove.
TEST_USER = "t2i-test-user"
G8I = "ecs.g8i.8xlarge"
NODES: dict[str, dict[str, str]] = {
    "g8i-node-0": {"node.kubernetes.io/instance-type": G8I},
    "g8i-node-1": {"node.kubernetes.io/instance-type": G8I},
    "tdx-node-0": {"node.kubernetes.io/instance-type": G8I, "nodepool-label": "tdx-vm-pool"},
    "plain-node-0": {"node.kubernetes.io/instance-type": "ecs.c7.2xlarge"},
}
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
    userGroups: ["system:serviceaccounts", "t2i-test"]
  - level: None
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] cluster: {msg}", file=sys.stderr, flush=True)


def wait_for(pred: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """hack.support.wait_for in this module's argument order; an exception counts as "not
    yet" (a server that is still starting refuses connections)."""
    return support.wait_for(pred, what, timeout, interval, ignore=(Exception,))


def build_binaries(kubelet: bool = False) -> Path:
    """Run build.sh (a no-op when the cache is complete) and return the bin dir."""
    cmd = ["bash", str(HERE / "build.sh"), *(["--kubelet"] if kubelet else [])]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE)
    return Path(out.stdout.decode().strip().splitlines()[-1])


@dataclass
class LocalCluster:
    """One control plane: its state dir holds PKI, kubeconfigs, logs, `pids` and `info.json`."""

    state: Path
    bin: Path | None = None
    real_node: bool = False

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def user_kubeconfig(self) -> Path:
        """Static-token identity `t2i-test-user` (group `t2i-test`), no RBAC bindings."""
        return self.state / "test-user.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.state / "logs" / "audit.log"

    @property
    def info(self) -> dict:
        p = self.state / "info.json"
        return json.loads(p.read_text()) if p.exists() else {}

    @property
    def kubectl(self) -> Path:
        return Path(self.info["bin"]) / "kubectl"

    @property
    def server(self) -> str:
        return self.info["server"]

    @property
    def ca_file(self) -> Path:
        return self.state / "pki" / "ca.crt"

    nodes = NODES

    # ---- processes ------------------------------------------------------------------------
    def _pids(self) -> list[tuple[int, str]]:
        p = self.state / "pids"
        if not p.exists():
            return []
        return [
            (int(a), b) for a, b in (ln.split(" ", 1) for ln in p.read_text().split("\n") if ln)
        ]

    def pids(self) -> dict[str, int]:
        """Running control-plane processes by name (for CPU accounting in benchmarks)."""
        return {name: pid for pid, name in self._pids()}

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        return self._spawn_cmd(name, [str(self.bin / args[0]), *args[1:]])

    def _spawn_cmd(self, name: str, argv: list[str], **popen: Any) -> subprocess.Popen:
        """Start `argv` in its own session, log to logs/NAME.log, record its pid."""
        logf = open(self.state / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - child owns it
        proc = subprocess.Popen(
            argv,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **popen,
        )
        logf.close()
        with open(self.state / "pids", "a") as f:
            f.write(f"{proc.pid} {name}\n")
        self._procs[name] = proc
        return proc

    def _alive(self, name: str) -> bool:
        proc = self._procs[name]
        if proc.poll() is not None:
            tail = (self.state / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
        return True

    def _get(self, path: str) -> tuple[int, bytes]:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(
            str(self.state / "pki" / "admin.crt"), str(self.state / "pki" / "admin.key")
        )
        try:
            with urllib.request.urlopen(self.server + path, context=ctx, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def kubectl_run(self, *args: str, input: str | None = None) -> str:
        r = subprocess.run(
            [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            text=True,
            capture_output=True,
        )
        if r.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def up(self, timeout: float = 180) -> LocalCluster:
        """Start everything and wait until nodes are Ready and `default` SA exists."""
        if self._pids():
            raise RuntimeError(f"{self.state} already has running processes; run `down` first")
        t0 = time.monotonic()
        self.bin = self.bin or build_binaries()
        self._procs: dict[str, subprocess.Popen] = {}
        for sub in ("logs", "etcd"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        pki = self.state / "pki"
        node = None
        if self.real_node:
            realnode.ensure_packages()
            node = realnode.RealNode(self, realnode.free_subnet())
            (self.state / "node").mkdir(exist_ok=True)
            (self.state / "node" / "subnet").write_text(str(node.subnet))
        if not (pki / "tokens.csv").exists():
            make_pki(pki, TEST_USER, extra_ips=(node.gateway,) if node else ())
        (self.state / "audit-policy.yaml").write_text(AUDIT_POLICY)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        server = f"https://127.0.0.1:{api_port}"
        (self.state / "info.json").write_text(json.dumps({"bin": str(self.bin), "server": server}))
        self.kubeconfig.write_text(
            kubeconfig_text(
                server,
                pki / "ca.crt",
                {
                    "client-certificate": str(pki / "admin.crt"),
                    "client-key": str(pki / "admin.key"),
                },
            )
        )
        self.user_kubeconfig.write_text(
            kubeconfig_text(
                server, pki / "ca.crt", {"token": (pki / "test-user.token").read_text()}
            )
        )
        try:
            self._start(etcd_port, peer_port, api_port, timeout)
            if node:
                node.up(build_binaries(kubelet=True), api_port, timeout)
                info = {
                    **self.info,
                    "real_node": node.name,
                    "pod_api": node.gateway,
                    "pod_api_port": node.api_port,
                    "subnet": str(node.subnet),
                }
                (self.state / "info.json").write_text(json.dumps(info))
        except BaseException:
            self.down()
            raise
        log(f"up in {time.monotonic() - t0:.1f}s: {server}")
        return self

    def node_kubeconfig(self, node: str) -> str:
        """A kubeconfig for a kubelet: its own `system:node:NAME` identity (Node authorizer)."""
        pki = self.state / "pki"
        client_cert(pki, f"node-{node}", f"/CN=system:node:{node}/O=system:nodes")
        return kubeconfig_text(
            self.server,
            pki / "ca.crt",
            {
                "client-certificate": str(pki / f"node-{node}.crt"),
                "client-key": str(pki / f"node-{node}.key"),
            },
        )

    @property
    def node(self) -> realnode.RealNode | None:
        """The real node of this cluster, if it was started with one."""
        subnet = self.state / "node" / "subnet"
        if not subnet.exists():
            return None
        import ipaddress

        n = realnode.RealNode(self, ipaddress.ip_network(subnet.read_text().strip()))
        n.api_port = self.info.get("pod_api_port", 0)
        return n

    def _start(self, etcd_port: int, peer_port: int, api_port: int, timeout: float) -> None:
        pki, kc = self.state / "pki", str(self.kubeconfig)
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn("etcd", components.etcd(self.state / "etcd", etcd_port, peer_port))
        self._spawn(
            "kube-apiserver",
            components.apiserver(
                pki,
                etcd_url,
                api_port,
                audit_policy=self.state / "audit-policy.yaml",
                audit_log=self.audit_log,
                aggregation=aggregation_flags(ensure_front_proxy_pki(pki)),
            ),
        )

        def readyz() -> bool:
            self._alive("etcd")
            self._alive("kube-apiserver")
            return self._get("/readyz")[0] == 200

        wait_for(readyz, timeout, "kube-apiserver /readyz")
        log("apiserver ready")
        self._spawn("kube-controller-manager", components.controller_manager(pki, kc))
        self._spawn("kube-scheduler", components.scheduler(kc))
        self._spawn("kwok", components.kwok(kc, self.bin / "kwok.yaml"))
        self.kubectl_run(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": [node(n, lb) for n, lb in NODES.items()],
                }
            ),
        )

        def nodes_ready() -> bool:
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self._alive(name)
            items = json.loads(self.kubectl_run("get", "nodes", "-o", "json"))["items"]
            ready = [
                n
                for n in items
                for c in n["status"].get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            ]
            return len(ready) >= len(NODES)

        wait_for(nodes_ready, timeout, f"{len(NODES)} kwok nodes Ready")
        wait_for(
            lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            timeout,
            "ServiceAccount default/default",
        )

    def down(self, grace: float = 10) -> None:
        """Stop every recorded pid in reverse start order: SIGTERM, bounded wait, SIGKILL.

        One at a time, so the apiserver still has etcd while it drains. A real node's pods are
        deleted first (while its kubelet runs), and what its processes leave behind is removed
        afterwards (realnode.RealNode.cleanup).
        """
        node = self.node
        running = {name for pid, name in self._pids() if _running(pid)}
        if node and {"kubelet", "kube-apiserver"} <= running:
            node.drain()
        for pid, name in reversed(self._pids()):
            _signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _running(pid):
                log(f"{name} ({pid}) still running {grace:.0f}s after SIGTERM; SIGKILL")
                _signal(pid, signal.SIGKILL)
                wait_for(lambda p=pid: not _running(p), 10, f"{name} ({pid}) to die")
        (self.state / "pids").unlink(missing_ok=True)
        for proc in getattr(self, "_procs", {}).values():
            proc.poll()  # reap our own children
        if node:
            node.cleanup()

    def status(self) -> dict[str, bool]:
        return {f"{name} ({pid})": _running(pid) for pid, name in self._pids()}


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _running(pid: int) -> bool:
    """True while the pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def node(name: str, labels: dict[str, str], cpu: str = "64", memory: str = "256Gi") -> dict:
    """A kwok-managed fake Node with room for many pods."""
    cap = {"cpu": cpu, "memory": memory, "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "type": "kwok",
                **labels,
            },
        },
        "status": {"capacity": cap, "allocatable": cap},
    }


def default_state(name: str = "default") -> Path:
    """Per checkout: two clones on one machine each get their own `default` cluster."""
    checkout = Path(__file__).resolve().parents[2]
    key = hashlib.sha256(str(checkout).encode()).hexdigest()[:12]
    return CACHE / "clusters" / f"{checkout.name}-{key}" / name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["up", "down", "status", "env"])
    ap.add_argument("--name", default="default", help="cluster name (state dir under the cache)")
    ap.add_argument("--state-dir", type=Path, help="explicit state directory")
    ap.add_argument(
        "--real-node",
        action="store_true",
        help="up: also start a real kubelet node (containerd/runc/CNI, root; docs/real-node.md)",
    )
    a = ap.parse_args(argv)
    c = LocalCluster(a.state_dir or default_state(a.name), real_node=a.real_node)
    if a.command == "up":
        c.up()
        print(f"export KUBECONFIG={c.kubeconfig}")
        print(f"alias kubectl={c.kubectl}")
    elif a.command == "down":
        c.down()
        log("stopped")
    elif a.command == "status":
        st = c.status()
        for k, v in st.items():
            print(f"{k}: {'running' if v else 'STOPPED'}")
        if not st:
            print("not running")
        return 0 if st and all(st.values()) else 1
    else:
        print(f"export KUBECONFIG={c.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
