"""pytest fixtures for the operator e2e tests (imported by each test_operator_*.py module).

`cluster_access` adapts whatever the control-plane fixture provides (see conftest.py) into an
admin kubectl plus the audit log path; `operator` installs the CRD and RBAC, then runs the
operator as a separate process under its ServiceAccount for the whole session.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_harness import (
    Kubectl,
    OperatorProcess,
    install_crd_and_rbac,
    operator_kubeconfig,
    unique,
)


@pytest.fixture(scope="session")
def cluster_access(request) -> tuple[Kubectl, Path | None]:
    """(admin kubectl, audit log or None) from the control-plane fixture or T2I_E2E_KUBECONFIG."""
    try:
        cluster = request.getfixturevalue("cluster")
    except pytest.FixtureLookupError:
        cluster = None
    if cluster is not None:
        kubeconfig = str(cluster.kubeconfig)
        binary = str(getattr(cluster, "kubectl", None) or shutil.which("kubectl"))
        audit = getattr(cluster, "audit_log", None)
        return Kubectl(binary, kubeconfig), Path(audit) if audit else None
    kubeconfig = os.environ.get("T2I_E2E_KUBECONFIG")
    if not kubeconfig:
        pytest.fail("no `cluster` fixture (tests/e2e/conftest.py) and T2I_E2E_KUBECONFIG unset")
    binary = os.environ.get("T2I_KUBECTL") or shutil.which("kubectl")
    audit = os.environ.get("T2I_E2E_AUDIT_LOG")
    return Kubectl(binary, kubeconfig), Path(audit) if audit else None


@pytest.fixture(scope="session")
def kubectl(cluster_access) -> Kubectl:
    return cluster_access[0]


@pytest.fixture(scope="session")
def audit_log(cluster_access) -> Path | None:
    return cluster_access[1]


# Each test module imports these fixtures, and pytest makes one definition per importing
# module — a session fixture would then start one operator PER MODULE, all running at once.
# One process for the whole session: later definitions reuse the first one's.
_SESSION: dict[str, OperatorProcess] = {}


@pytest.fixture(scope="session")
def operator(kubectl, tmp_path_factory) -> Iterator[OperatorProcess]:
    if "operator" in _SESSION:
        yield _SESSION["operator"]
        return
    workdir = tmp_path_factory.mktemp("operator")
    install_crd_and_rbac(kubectl)
    op = OperatorProcess(
        kubeconfig=operator_kubeconfig(kubectl, workdir / "operator.kubeconfig"),
        log_path=workdir / "operator.log",
    )
    op.start()
    _SESSION["operator"] = op
    try:
        yield op
    finally:
        op.stop()
        del _SESSION["operator"]
        print(f"operator log: {op.log_path}")


@pytest.fixture
def ns(kubectl, operator) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (the operator is already running)."""
    name = unique("e2e")
    kubectl("create", "namespace", name)
    yield name
    # CRs first, while the operator runs to release its finalizer; then the namespace.
    kubectl.run("delete", "t2i", "--all", "-n", name, "--wait=true", "--timeout=60s", check=False)
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)
