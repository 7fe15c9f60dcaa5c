"""Helpers shared by hack/ scripts and the tests (standard library only).

Polling with a deadline (``wait_for``), a free local port, an admin ``kubectl`` runner with
status-reading helpers (``Kubectl.ready``, ``Kubectl.wait_ready``), the operator as a separate
process under its shipped RBAC (``install_crd_and_rbac``, ``operator_kubeconfig``,
``OperatorProcess``) and the API server's audit log (``audit_events``, ``mutating_requests``).

Import it as ``hack.support``: the clone's root is on sys.path in its venv (hack/venv.sh) and
in pytest (pyproject's ``pythonpath``); a script under hack/ adds the root itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
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
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``check`` until it returns something truthy (returned); after ``timeout`` seconds
    raise TimeoutError naming ``what``, the last value and what ``explain()`` reports about the
    state at that moment. Exceptions of the ``ignore`` types count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except ignore as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)  # polling interval, not a synchronisation sleep
    details = f"; state: {explain()!r}" if explain else ""
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}{details}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the caller binds it next)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def condition(obj: dict | None, ctype: str) -> dict:
    """The status condition of type ``ctype`` ({} when absent)."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}


def is_ready(obj: dict | None, generation: int | None = None) -> bool:
    """Ready=True in the status, for ``generation`` when given (its observedGeneration)."""
    if condition(obj, "Ready").get("status") != "True":
        return False
    return generation is None or (obj or {})["status"].get("observedGeneration") == generation


@dataclass
class Kubectl:
    """``kubectl --kubeconfig KUBECONFIG ...``; a non-zero exit raises with kubectl's stderr."""

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
        text = obj if isinstance(obj, str) else json.dumps(obj)  # JSON is YAML
        return self("apply", "-f", "-", stdin=text)

    def ready(self, name: str, namespace: str, generation: int | None = None) -> dict | None:
        """The Text2ImageService when its status says Ready (for ``generation``), else None."""
        cr = self.get("t2i", name, namespace)
        return cr if is_ready(cr, generation) else None

    def wait_ready(
        self,
        name: str,
        namespace: str,
        generation: int | None = None,
        timeout: float = 90.0,
        explain: Callable[[], Any] | None = None,
    ) -> dict:
        """Wait until the status reports Ready=True (for ``generation`` when given)."""
        at = f" for generation {generation}" if generation is not None else ""
        return wait_for(
            lambda: self.ready(name, namespace, generation),
            f"{namespace}/{name} Ready{at}",
            timeout,
            explain=explain,
        )

    def wait_condition(
        self,
        name: str,
        namespace: str,
        ctype: str,
        *,
        status: str | None = None,
        reason: str | None = None,
        timeout: float = 90.0,
        explain: Callable[[], Any] | None = None,
    ) -> dict:
        """Wait until the Text2ImageService's condition ``ctype`` has ``status`` and/or
        ``reason``; returns the resource as it was then."""

        def matches() -> dict | None:
            cr = self.get("t2i", name, namespace)
            cond = condition(cr, ctype)
            ok = (status is None or cond.get("status") == status) and (
                reason is None or cond.get("reason") == reason
            )
            return cr if ok else None

        wanted = " ".join(x for x in (status, reason) if x)
        return wait_for(
            matches,
            f"{namespace}/{name} {ctype} {wanted}",
            timeout,
            explain=explain or (lambda: condition(self.get("t2i", name, namespace), ctype)),
        )


@dataclass
class OperatorProcess:
    """``python -m t2i_operator.main`` with a kubeconfig for the operator's ServiceAccount."""

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
    path.write_text(json.dumps(config))  # JSON is YAML
    path.chmod(0o600)
    return path


def audit_events(audit_log: Path, since: float) -> list[dict]:
    """Completed API requests in the apiserver's audit log received after `since` (epoch s)."""
    events: list[dict] = []
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
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
