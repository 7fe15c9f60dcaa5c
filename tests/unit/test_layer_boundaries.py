"""Layer boundaries: the import-linter contracts in .importlinter (run by hack/lint.sh) hold on
this tree, and each of them fails when a module breaks it, directly or through another module."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "operator" / "t2i_operator"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{root / 'operator'}{os.pathsep}{root}"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_contracts_hold_on_this_tree():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


# (module that gains the import, the import, the contract it breaks, a link the report names)
VIOLATIONS = [
    (
        "operator/t2i_operator/render/hpa.py",
        "from t2i_operator.kube import Kube",
        "operator pure modules never reach kopf, the client or kube/apply/reconcile/handlers",
        "t2i_operator.kube -> kubernetes",
    ),
    (
        "inference_server/engine/threads.py",
        "import inference_server.cli",  # reaches flask only through cli's lazy import of app
        "server engine never reaches flask/werkzeug/waitress/api/app/serving",
        "inference_server.app -> flask",
    ),
    (
        "inference_server/api/urls.py",
        "import inference_server.engine.pipeline",  # reaches torch through the engine
        "server HTTP layer (app, api, batcher, generation) never imports torch",
        "inference_server.engine.pipeline -> torch",
    ),
]


@pytest.mark.parametrize("module,line,contract,link", VIOLATIONS, ids=lambda v: str(v))
def test_each_contract_fails_when_broken(tmp_path, module, line, contract, link):
    for part in ("operator/t2i_operator", "inference_server"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path)
    with (tmp_path / module).open("a") as f:
        f.write(f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 kept, 1 broken" in result.stdout
    report = " ".join(result.stdout.split())  # the report wraps long contract names
    assert f"{contract} BROKEN" in report, result.stdout
    assert link in result.stdout


def test_only_apply_and_kube_write_children():
    writers = {
        p.name
        for p in PKG.rglob("*.py")
        if ".apply(" in p.read_text() and p.name not in ("kube.py",)
    }
    assert writers == {"apply.py"}


def test_importing_the_http_app_loads_no_ml_framework():
    """The contract's runtime face: `import inference_server.app` leaves torch unloaded."""
    code = (
        "import sys, inference_server.app; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
