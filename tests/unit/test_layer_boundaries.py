"""Layer boundaries (as kopf's .importlinter does for its own layers): spec, render and status
are pure — they import neither kopf nor the kubernetes client, so they test without a cluster."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "operator" / "t2i_operator"
PURE = [
    PKG / "spec.py",
    PKG / "status.py",
    PKG / "attestation.py",
    *sorted((PKG / "render").glob("*.py")),
]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", PURE, ids=lambda p: p.relative_to(PKG).as_posix())
def test_pure_modules_import_no_kopf_or_client(path):
    assert imported_roots(path).isdisjoint({"kopf", "kubernetes", "requests", "urllib3"})


def test_only_apply_and_kube_write_children():
    writers = {
        p.name
        for p in PKG.rglob("*.py")
        if ".apply(" in p.read_text() and p.name not in ("kube.py",)
    }
    assert writers == {"apply.py"}
