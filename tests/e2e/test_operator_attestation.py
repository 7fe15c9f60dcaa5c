"""Attested on a TDX service: the operator asks a real t2i-server (tiny pipeline, quotes from
the configfs-tsm-like tree of tests/server/tsm_fixture.py) for evidence and checks its binding.

kwok pods run no containers, so the operator is restarted with the TEST-ONLY
T2I_ATTESTATION_URL_OVERRIDE pointing every pod's request at that local server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from operator_harness import condition, free_port, t2i, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from tsm_fixture import ConfigfsTsm  # stdlib only: no torch in this process

pytestmark = pytest.mark.e2e
OVERRIDE = "T2I_ATTESTATION_URL_OVERRIDE"
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MAKE_MODEL = (
    "import sys; from inference_server.tiny_model import save_tiny_pipeline as s; s(sys.argv[1])"
)


def cli_env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def tsm(tmp_path_factory) -> Iterator[ConfigfsTsm]:
    with ConfigfsTsm(tmp_path_factory.mktemp("configfs") / "tsm" / "report") as emulated:
        yield emulated


@pytest.fixture(scope="module")
def server(tmp_path_factory, tsm) -> Iterator[str]:
    work = tmp_path_factory.mktemp("attest-server")
    model = work / "model"
    subprocess.run(
        [sys.executable, "-c", MAKE_MODEL, str(model)], check=True, env=cli_env(), timeout=300
    )
    port = free_port()
    log = work / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                *(str(BIN / "t2i-server"), "--model-dir", str(model), "--host", "127.0.0.1"),
                *("--port", str(port), "--output-dir", str(work / "out"), "--threads", "1"),
                "--attestation-per-minute=600",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**cli_env(), "T2I_TSM_REPORT_ROOT": str(tsm.root)},
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return requests.get(f"{base}/readyz", timeout=2).status_code == 200
        except requests.RequestException:  # refused, or a read timeout on a loaded machine
            return False

    try:
        wait_for(up, "t2i-server /readyz", timeout=180)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def attesting_operator(operator, server) -> Iterator[None]:
    """The session operator, restarted to send attestation requests to ``server``."""
    operator.stop()
    os.environ[OVERRIDE] = server
    operator.start()
    try:
        yield
    finally:
        del os.environ[OVERRIDE]
        operator.stop()
        operator.start()


def attested(kubectl, ns, name, status, reason):
    cr = kubectl.get("t2i", name, ns)
    c = condition(cr, "Attested")
    return cr if (c.get("status"), c.get("reason")) == (status, reason) else None


def test_tdx_service_is_attested_then_degraded_when_not_in_a_td(
    kubectl, ns, attesting_operator, tsm
):
    kubectl.apply(t2i("sd", ns, placement={"pool": "TDX"}))
    kubectl.apply(t2i("plain", ns))
    cr = wait_for(lambda: attested(kubectl, ns, "sd", "True", "TDEvidence"), "Attested=True")
    message = condition(cr, "Attested")["message"]
    assert "tdx_guest" in message and "sha256:" in message
    assert tsm.quotes, "the server never wrote a report to configfs-tsm"
    assert condition(cr, "Degraded")["status"] == "False"
    wide = kubectl("get", "t2i", "sd", "-n", ns, "-o", "wide")
    header, row = wide.splitlines()
    assert header.split()[-1] == "ATTESTED" and row.split()[-1] == "True"
    assert condition(kubectl.get("t2i", "plain", ns), "Attested") == {}

    gone = tsm.root.with_name("moved-away")
    tsm.root.rename(gone)  # the server now finds no configfs-tsm: "not in a TD"
    try:
        cr = wait_for(lambda: attested(kubectl, ns, "sd", "False", "NotInTD"), "Attested=False")
        degraded = condition(cr, "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "NotInTD")
        assert "not running in a TD" in degraded["message"]
        events = kubectl.items("events", ns)
        assert any(e.get("reason") == "NotInTD" and e.get("type") == "Warning" for e in events), (
            events
        )
    finally:
        gone.rename(tsm.root)
    cr = wait_for(lambda: attested(kubectl, ns, "sd", "True", "TDEvidence"), "Attested again")
    assert condition(cr, "Degraded")["status"] == "False"
