"""The operator's client on the LOWEST kubernetes package the pin allows (issue 16 item 12):
`ApiClient.param_serialize`, used before, exists only from 37 while pyproject allows >=30."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from operator_harness import ROOT

pytestmark = pytest.mark.e2e

SCRIPT = r"""
import json, sys
import kubernetes
from kubernetes.client.exceptions import ApiException
from t2i_operator.kube import Kube, Ref
from t2i_operator.main import load_configuration

ns = sys.argv[1]
kube = Kube(load_configuration())
svc = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "min-client", "namespace": ns},
    "spec": {"ports": [{"name": "http", "port": 80}]},
}
out = {"version": kubernetes.__version__}
out["applied"] = kube.apply(svc, manager="t2i-operator")["metadata"]["name"]
out["got"] = kube.get(Ref.of(svc))["spec"]["ports"][0]["port"]
out["listed"] = [s["metadata"]["name"] for s in kube.list("v1", "Service", ns, "")]
out["missing"] = kube.get(Ref("v1", "Service", "absent", ns))
bad = {**svc, "spec": {"ports": [{"name": "http", "port": 70000}]}}
try:
    kube.apply(bad, manager="t2i-operator")
except ApiException as e:
    out["rejected"] = [e.status, "70000" in (e.body or "")]
out["deleted"] = kube.delete(Ref.of(svc))
print(json.dumps(out))
"""


def test_client_works_on_the_lowest_allowed_kubernetes_package(ns, operator):
    lowest = subprocess.run(
        ["bash", str(ROOT / "hack" / "kube-client-min.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout.strip()
    env = {
        **os.environ,
        "KUBECONFIG": str(operator.kubeconfig),  # the operator's ServiceAccount token
        "PYTHONPATH": os.pathsep.join([lowest, str(ROOT / "operator")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, ns], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {
        "version": "30.1.0",
        "applied": "min-client",
        "got": 80,
        "listed": ["min-client"],
        "missing": None,
        "rejected": [422, True],
        "deleted": True,
    }
