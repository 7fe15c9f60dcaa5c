"""Every example applies cleanly to a real API server (server-side dry-run against the installed
CRD and its CEL rules), and a broken copy is rejected naming the field — so no example can rot."""

from __future__ import annotations

import copy

import pytest
import yaml
from operator_harness import ROOT

pytestmark = pytest.mark.e2e

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def crd(kube, crd_installed):
    """Admin kubectl on the e2e control plane (conftest.py) with the CRD Established."""
    return kube


def _docs(path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _dry_run(kubectl, docs: list[dict]):
    text = yaml.safe_dump_all(docs)
    return kubectl.run(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", stdin=text, check=False
    )


def test_every_scenario_has_an_example():
    names = {p.name for p in EXAMPLES}
    assert {
        "bundled.yaml",
        "oss-custom-model.yaml",
        "existing-pvc.yaml",
        "hostpath.yaml",
        "autoscaling.yaml",
        "tdx.yaml",
        "reference.yaml",
    } <= names
    readme = (ROOT / "examples" / "README.md").read_text()
    for name in names:
        assert name in readme, f"examples/README.md does not list {name}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes_server_side_dry_run(crd, path):
    docs = _docs(path)
    assert any(d["kind"] == "Text2ImageService" for d in docs)
    # Files are applied as written (kubectl parses them itself), not re-serialized by PyYAML.
    proc = crd.run("apply", "--dry-run=server", "--validate=strict", "-f", str(path), check=False)
    assert proc.returncode == 0, proc.stderr
    for d in docs:
        assert f"{d['metadata']['name']}" in proc.stdout and "(server dry run)" in proc.stdout


def _service(path: str) -> dict:
    return next(d for d in _docs(ROOT / "examples" / path) if d["kind"] == "Text2ImageService")


def _broken(base: str, edit) -> dict:
    obj = copy.deepcopy(_service(base))
    edit(obj["spec"])
    return obj


BROKEN = [
    (
        "misspelled field (strict field validation, not silently pruned)",
        lambda s: s.update({"resource": s.pop("resources")}),
        "bundled.yaml",
        "spec.resource",
    ),
    (
        "two model sources",
        lambda s: s["model"].update({"hostPath": {"path": "/data/models"}}),
        "existing-pvc.yaml",
        "spec.model.hostPath",
    ),
    (
        "tdx_values.yaml nodeSelector kept beside pool G8i",
        lambda s: s.update(
            {"placement": {"pool": "G8i"}, "nodeSelector": {"nodepool-label": "tdx-vm-pool"}}
        ),
        "tdx.yaml",
        "spec.nodeSelector",
    ),
    (
        "OSS without a bucket",
        lambda s: s["model"]["oss"].pop("bucket"),
        "oss-custom-model.yaml",
        "spec.model.oss.bucket",
    ),
    (
        "autoscaling min above max",
        lambda s: s["autoscaling"].update({"minReplicas": 4}),
        "autoscaling.yaml",
        "spec.autoscaling.minReplicas",
    ),
]


@pytest.mark.parametrize(("what", "edit", "base", "field"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_copy_is_rejected_naming_the_field(crd, what, edit, base, field):
    proc = _dry_run(crd, [_broken(base, edit)])
    assert proc.returncode != 0, f"{what}: accepted by the API server"
    assert field in proc.stderr, proc.stderr


def test_unquoted_yaml_boolean_in_the_secret_is_rejected(crd):
    """The trap the OSS example warns about: `akId: yes` is a boolean, not a string."""
    text = (ROOT / "examples" / "oss-custom-model.yaml").read_text()
    secret = text.split("\n---\n")[0].replace('"<your-access-key-id>"', "yes")
    proc = crd.run(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", stdin=secret, check=False
    )
    assert proc.returncode != 0
    assert "akId" in proc.stderr or "stringData" in proc.stderr, proc.stderr
