"""The operator as a separate process under its shipped RBAC, and helpers the e2e tests share.

The cluster itself (admin kubeconfig, kubectl, fake kwok nodes) comes from the control-plane
fixtures in conftest.py; this module only installs the CRD and deploy/rbac.yaml, mints a token
for the operator's ServiceAccount (so it runs with exactly the ClusterRole we ship, not as admin),
and starts/stops/kills `python -m t2i_operator.main` by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from t2i_operator.render.common import LABEL_OWNER, Owner, label_selector, labels

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "t2i.dev_text2imageservices.yaml"
SA_USER = "system:serviceaccount:t2i-system:t2i-operator"
MUTATING_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
T = TypeVar("T")


def wait_for(
    check: Callable[[], T],
    what: str,
    timeout: float = 90.0,
    interval: float = 0.25,
    explain: Callable[[], Any] | None = None,
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what`, the last value and
    what `explain()` reports about the state at that moment."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)  # polling interval, not a synchronisation sleep
    details = f"; state: {explain()!r}" if explain else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}{details}")


@dataclass
class Kubectl:
    binary: str
    kubeconfig: str

    def run(self, *args: str, stdin: str | None = None, check: bool = True):
        proc = subprocess.run(
            [self.binary, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        return self.run(*args, stdin=stdin).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        ns = ["-n", namespace] if namespace else []
        proc = self.run("get", kind, name, *ns, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr or "not found" in proc.stderr:
                return None
            raise AssertionError(proc.stderr)
        return json.loads(proc.stdout)

    def items(self, kind: str, namespace: str | None = None, selector: str = "") -> list[dict]:
        args = ["get", kind, "-o", "json"]
        args += ["-n", namespace] if namespace else []
        args += ["-l", selector] if selector else []
        return json.loads(self(*args))["items"]

    def apply(self, obj: dict | str) -> str:
        text = obj if isinstance(obj, str) else yaml.safe_dump(obj)
        return self("apply", "-f", "-", stdin=text)


@dataclass
class OperatorProcess:
    """`python -m t2i_operator.main` with a kubeconfig for the operator's ServiceAccount."""

    kubeconfig: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    _log: Any = field(default=None, repr=False)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self._log = open(self.log_path, "a")  # noqa: SIM115 (kept open for the process)
        self._log.write(f"\n===== start {self.starts} =====\n")
        self._log.flush()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        # kwok pod IPs are fake: attestation requests go to a local server (test_operator_
        # attestation.py sets one) or, by default, to a closed local port — never off the host.
        env.setdefault("T2I_ATTESTATION_URL_OVERRIDE", "http://127.0.0.1:9")
        self.proc = subprocess.Popen(
            # A short resync so the no-op test also covers the periodic pass.
            [
                *(sys.executable, "-m", "t2i_operator.main", "--liveness=", "--resync-seconds=5"),
                "--attestation-seconds=2",
                "--monitoring-recheck-seconds=2",  # test_operator_serving.py installs the CRD
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def log_since_start(self) -> str:
        text = self.log_path.read_text(errors="replace")
        return text.rsplit(f"===== start {self.starts} =====", 1)[-1]

    def _reap(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self._reap(signal.SIGTERM)
        if self._log:
            self._log.close()

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown — a crash."""
        self._reap(signal.SIGKILL)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def wait_established(kubectl: Kubectl, crd: str = "text2imageservices.t2i.dev") -> None:
    """Polls the condition: `kubectl wait --for=condition=Established` fails at once
    ("accessor error: <nil>") when it reads the CRD before the API server wrote any condition."""
    wait_for(
        lambda: condition(kubectl.get("crd", crd), "Established").get("status") == "True",
        f"CRD {crd} Established",
        timeout=60,
    )


def install_crd_and_rbac(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(CRD))
    wait_established(kubectl)
    kubectl("apply", "-f", str(ROOT / "deploy" / "namespace.yaml"))
    kubectl("apply", "-f", str(ROOT / "deploy" / "rbac.yaml"))


def operator_kubeconfig(kubectl: Kubectl, path: Path) -> Path:
    """A kubeconfig whose only credential is a token of the operator's ServiceAccount."""
    wait_for(
        lambda: kubectl.get("serviceaccount", "t2i-operator", "t2i-system"),
        "the operator's ServiceAccount",
    )
    token = kubectl("create", "token", "t2i-operator", "-n", "t2i-system", "--duration=6h")
    raw = kubectl.json("config", "view", "--raw", "--minify", "--flatten")
    cluster = raw["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": cluster}],
        "users": [{"name": "t2i-operator", "user": {"token": token.strip()}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "t2i-operator"}}],
        "current-context": "e2e",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def audit_events(audit_log: Path, since: float) -> list[dict]:
    """Completed API requests in the apiserver's audit log received after `since` (epoch s)."""
    events = []
    if not audit_log.exists():
        return events
    for line in audit_log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("stage") != "ResponseComplete":
            continue
        if _audit_epoch(event.get("requestReceivedTimestamp", "")) >= since:
            events.append(event)
    return events


def mutating_requests(
    audit_log: Path, since: float, user: str = SA_USER, namespace: str | None = None
) -> list[dict]:
    """Mutating API requests by `user` logged after `since` (epoch seconds), optionally only
    those on objects in `namespace` (other tests' namespaces may still be tearing down)."""
    return [
        event
        for event in audit_events(audit_log, since)
        if event.get("verb") in MUTATING_VERBS
        and (event.get("user") or {}).get("username") == user
        and (not namespace or (event.get("objectRef") or {}).get("namespace") == namespace)
    ]


def _audit_epoch(stamp: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def t2i(name: str, namespace: str, **spec: Any) -> dict:
    """An example Text2ImageService sized for fake nodes (the tutorial's 14/16 CPUs would fit
    too, but small requests let 3 replicas share a node)."""
    body = {
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        }
    }
    body.update(spec)
    return {
        "apiVersion": "t2i.dev/v1alpha1",
        "kind": "Text2ImageService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def model_claims(kubectl: Kubectl, namespace: str, name: str) -> list[dict]:
    """The OSS model PVCs of a resource (named `<name>-models-<source digest>`)."""
    owner = Owner(name=name, namespace=namespace, uid="")
    return [
        c
        for c in kubectl.items("pvc", namespace, label_selector(labels(owner)))
        if c["metadata"]["name"].startswith(f"{name}-models-")
    ]


def model_volumes(kubectl: Kubectl, namespace: str, name: str) -> list[dict]:
    """The cluster-scoped OSS model PVs of a resource (found by the owner label)."""
    owner = Owner(name=name, namespace=namespace, uid="")
    return kubectl.items("pv", None, f"{LABEL_OWNER}={owner.owner_label}")


def model_claim(kubectl: Kubectl, namespace: str, name: str) -> dict | None:
    return _the_live_one(model_claims(kubectl, namespace, name))


def model_volume(kubectl: Kubectl, namespace: str, name: str) -> dict | None:
    return _the_live_one(model_volumes(kubectl, namespace, name))


def _the_live_one(objs: list[dict]) -> dict | None:
    """The one object not being deleted (a replaced pair may still be terminating), or None."""
    live = [o for o in objs if "deletionTimestamp" not in o["metadata"]]
    assert len(live) <= 1, [o["metadata"]["name"] for o in live]
    return live[0] if live else None


def condition(obj: dict | None, ctype: str) -> dict:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}
