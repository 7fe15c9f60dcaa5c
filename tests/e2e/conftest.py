"""The control plane every e2e test runs against, plus generic fixtures.

`cluster` (session) is either
  * an existing cluster, when T2I_E2E_KUBECONFIG names an admin kubeconfig (kubectl from
    T2I_KUBECTL or PATH; audit log from T2I_E2E_AUDIT_LOG, optional). It must have
    >= 2 Ready nodes labelled `node.kubernetes.io/instance-type=ecs.g8i.<size>` WITHOUT
    `nodepool-label=tdx-vm-pool`, >= 1 node with `nodepool-label=tdx-vm-pool` (also a g8i type),
    >= 1 node of another instance type, each with room for a few pods of cpu 1 / memory 1Gi; or
  * the local control plane from hack/cluster/ (etcd, kube-apiserver v1.35.4 with RBAC and a
    JSON audit log, controller-manager, scheduler, kwok with 4 fake nodes: g8i-node-0/1,
    tdx-node-0, plain-node-0), built on first use (~6 min cold) and started in a fresh state dir
    (~4 s), stopped by pid at session end — also when tests fail or the session is interrupted.

Fixtures:
  cluster             object with .kubeconfig (admin, Path), .kubectl (matching 1.35 client,
                      Path), .server (URL), .ca_file (Path|None), .audit_log (Path|None),
                      .nodes ({name: labels} for the local cluster, {} for an existing one),
                      .user_kubeconfig (local only: static-token user `t2i-test-user`, group
                      `t2i-test`, with NO RBAC bindings), .state (local only: logs/ lives there)
  kube                admin `Kubectl` runner (operator_harness.Kubectl: kube("get", ...),
                      kube.json(...), kube.get(kind, name, ns), kube.items(...), kube.apply(obj))
  namespace           a fresh namespace per test, deleted afterwards (without waiting)
  crd_installed       the CRD from crds/ applied and Established (session)
  rbac_kubeconfig     Path to a kubeconfig whose only credential is a TokenRequest token of
                      ServiceAccount t2i-system/t2i-operator after applying deploy/namespace.yaml
                      and deploy/rbac.yaml — i.e. exactly the shipped RBAC, nothing else (session)
  kubectl             the same runner as `kube` (the operator tests' name)
  audit_log           the API server's audit log (Path) or None
  operator            the operator as a separate process under the shipped RBAC, one for the
                      session (killable/restartable: OperatorProcess in hack/support.py)
  ns                  like `namespace`, with the operator running; its CRs are deleted first
                      (while the operator runs to release its finalizer)
All fixtures live here (pytest hands them to every test module in this directory).
`wait_for(check, what, timeout)` and `Kubectl.wait_ready(name, ns, generation)` (status
conditions, never log wording) come from hack/support.py.
On a failing test the tail of every control-plane log is printed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from operator_harness import (
    Kubectl,
    OperatorProcess,
    install_crd_and_rbac,
    operator_kubeconfig,
    unique,
    wait_established,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack" / "cluster"))
import localcluster  # noqa: E402


@dataclass
class ExistingCluster:
    """A cluster the user already has (T2I_E2E_KUBECONFIG)."""

    kubeconfig: Path
    kubectl: Path
    audit_log: Path | None = None
    server: str = ""
    ca_file: Path | None = None
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    user_kubeconfig: Path | None = None
    state: Path | None = None


def _kubectl_bin() -> Path:
    found = os.environ.get("T2I_KUBECTL") or shutil.which("kubectl")
    if not found:
        raise pytest.UsageError("T2I_E2E_KUBECONFIG is set but no kubectl (set T2I_KUBECTL)")
    return Path(found)


def keep_state(request) -> bool:
    """Keep a session's cluster state for reading when a test failed (or when asked)."""
    return bool(request.session.testsfailed) or bool(os.environ.get("T2I_KEEP_CLUSTER_STATE"))


@pytest.fixture(scope="session")
def cluster(request) -> Iterator[localcluster.LocalCluster | ExistingCluster]:
    given = os.environ.get("T2I_E2E_KUBECONFIG")
    if given:
        audit = os.environ.get("T2I_E2E_AUDIT_LOG")
        yield ExistingCluster(Path(given), _kubectl_bin(), Path(audit) if audit else None)
        return
    state = Path(tempfile.mkdtemp(prefix="t2i-e2e-cluster-"))
    local = localcluster.LocalCluster(state)
    try:
        local.up()
        yield local
    finally:
        local.down()
        if keep_state(request):
            print(f"control-plane state and logs: {state}")
        else:  # ~70 MB of etcd data and logs per session: kept only when there is a failure
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def kube(cluster) -> Kubectl:
    return Kubectl(str(cluster.kubectl), str(cluster.kubeconfig))


@pytest.fixture
def namespace(kube: Kubectl) -> Iterator[str]:
    name = unique("e2e")
    kube("create", "namespace", name)
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crd_installed(kube: Kubectl) -> None:
    kube("apply", "-f", str(ROOT / "crds" / "t2i.dev_text2imageservices.yaml"))
    wait_established(kube)


@pytest.fixture(scope="session")
def rbac_kubeconfig(kube: Kubectl, tmp_path_factory) -> Path:
    install_crd_and_rbac(kube)
    return operator_kubeconfig(kube, tmp_path_factory.mktemp("rbac") / "operator.kubeconfig")


@pytest.fixture(scope="session")
def kubectl(kube: Kubectl) -> Kubectl:
    return kube


@pytest.fixture(scope="session")
def audit_log(cluster) -> Path | None:
    audit = getattr(cluster, "audit_log", None)
    return Path(audit) if audit else None


@pytest.fixture(scope="session")
def operator(kubectl: Kubectl, tmp_path_factory) -> Iterator[OperatorProcess]:
    workdir = tmp_path_factory.mktemp("operator")
    install_crd_and_rbac(kubectl)
    op = OperatorProcess(
        kubeconfig=operator_kubeconfig(kubectl, workdir / "operator.kubeconfig"),
        log_path=workdir / "operator.log",
    )
    op.start()
    try:
        yield op
    finally:
        op.stop()
        print(f"operator log: {op.log_path}")


@pytest.fixture
def ns(kubectl: Kubectl, operator: OperatorProcess, namespace: str) -> Iterator[str]:
    """`namespace` with the operator running. Its CRs are deleted first, while the operator
    runs to release its finalizer; then `namespace` deletes the namespace."""
    yield namespace
    kubectl.run(
        "delete", "t2i", "--all", "-n", namespace, "--wait=true", "--timeout=60s", check=False
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of each local control-plane log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or "cluster" not in item.fixturenames:
        return
    state = getattr(item.funcargs.get("cluster"), "state", None)
    if not state:
        return
    for log in sorted((Path(state) / "logs").glob("*.log")):
        if log.name != "audit.log":
            tail = log.read_text(errors="replace")[-3000:]
            report.sections.append((f"control-plane log {log.name} (tail)", tail))
