"""Deprecated: the operator fixtures live in conftest.py, which pytest gives every test module
here. Kept for one release so modules that still do ``from operator_fixtures import kubectl,
ns, operator, ...`` run unchanged (conftest's ``_SESSION`` keeps one operator process).
``cluster_access`` is (kubectl, audit_log), as before."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from operator_harness import Kubectl

# This directory's conftest, already imported by pytest (several tests/*/conftest.py share the
# module name "conftest", so it is found by its file, not imported by name).
_CONFTEST = next(
    m
    for m in list(sys.modules.values())
    if getattr(m, "__file__", None) == str(Path(__file__).with_name("conftest.py"))
)
audit_log = _CONFTEST.audit_log
kubectl = _CONFTEST.kubectl
ns = _CONFTEST.ns
operator = _CONFTEST.operator

__all__ = ["audit_log", "cluster_access", "kubectl", "ns", "operator"]


@pytest.fixture(scope="session")
def cluster_access(kube: Kubectl, cluster) -> tuple[Kubectl, Path | None]:
    audit = getattr(cluster, "audit_log", None)
    return kube, Path(audit) if audit else None
