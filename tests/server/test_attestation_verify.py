"""``t2i-verify`` end to end against the real ``t2i-server`` (tiny pipeline) whose configfs-tsm
root is the emulated tree: the binding check recomputes what the quote must contain."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from server_testlib import CliServer, cli_env, start_cli, terminate_cli
from tsm_fixture import ConfigfsTsm

from inference_server.attestation.manifest import model_digest


def start_server(model_dir: Path, work: Path, tsm_root: Path) -> CliServer:
    return start_cli(
        model_dir,
        work,
        *("--threads", "1", "--tsm-report-root", str(tsm_root)),
        *("--image-digest", "sha256:" + "ab" * 32, "--attestation-per-minute", "600"),
        ready_timeout=180,
    )


@pytest.fixture(scope="module")
def tsm(tmp_path_factory) -> Iterator[ConfigfsTsm]:
    with ConfigfsTsm(tmp_path_factory.mktemp("configfs") / "tsm" / "report") as emulated:
        yield emulated


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory, tsm) -> Iterator[str]:
    started = start_server(tiny_model_dir, tmp_path_factory.mktemp("verify"), tsm.root)
    try:
        yield started.base
    finally:
        terminate_cli(started)


def verify(*args: str) -> tuple[int, dict]:
    done = subprocess.run(
        # The module the t2i-verify entry point runs (the shared venv may predate the script).
        [sys.executable, "-m", "inference_server.attestation.verify", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def results(report: dict) -> dict[str, str]:
    return {c["name"]: c["result"] for c in report["checks"]}


def test_binding_verified_against_a_local_model_copy(server, tiny_model_dir, tsm):
    before = len(tsm.quotes)
    code, report = verify(
        server,
        "--model-dir",
        str(tiny_model_dir),
        "--expect-image-digest",
        "sha256:" + "ab" * 32,
    )
    assert code == 0, report
    assert results(report) == {
        "evidence": "passed",
        "nonce": "passed",
        "report-data": "passed",
        "quote-binding": "passed",
        "model-digest": "passed",
        "image-digest": "passed",
        "dcap": "not run",
    }
    assert report["provider"] == "tdx_guest"
    assert len(tsm.quotes) == before + 1
    dcap = next(c for c in report["checks"] if c["name"] == "dcap")
    assert "NOT verified" in dcap["detail"]


def test_require_dcap_fails_when_no_dcap_library_is_installed(server):
    code, report = verify(server, "--require-dcap")
    assert code == 1 and results(report)["dcap"] == "not run"
    assert results(report)["model-digest"] == "not run"  # nothing to compare: not a failure
    dcap = next(c for c in report["checks"] if c["name"] == "dcap")
    assert "no DCAP verification library" in dcap["detail"]


def test_a_replayed_quote_fails_the_binding(server, tsm):
    tsm.stale_report_data = b"\x01" * 64  # the quote of another request
    try:
        code, report = verify(server)
    finally:
        tsm.stale_report_data = None
    assert code == 1
    checks = results(report)
    assert checks["nonce"] == "passed" and checks["report-data"] == "passed"
    assert checks["quote-binding"] == "FAILED"
    assert checks["dcap"] == "not run"


def test_an_altered_model_fails_the_digest_check(server, tiny_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    weights = next(copy.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes() + b"\0")
    code, report = verify(server, "--model-dir", str(copy))
    assert code == 1 and results(report)["model-digest"] == "FAILED"
    code, report = verify(server, "--expect-model-digest", model_digest(tiny_model_dir)[0])
    assert code == 0 and results(report)["model-digest"] == "passed"


def test_a_wrong_image_digest_fails(server):
    code, report = verify(server, "--expect-image-digest", "sha256:" + "cd" * 32)
    assert code == 1 and results(report)["image-digest"] == "FAILED"


def test_not_in_a_td_exits_3(tiny_model_dir, tmp_path):
    started = start_server(tiny_model_dir, tmp_path, tmp_path / "no-configfs")
    try:
        code, report = verify(started.base)
    finally:
        terminate_cli(started)
    assert code == 3
    assert report["checks"][0]["result"] == "FAILED"
    assert "not running in a TD" in report["checks"][0]["detail"]


def test_tampered_evidence_fails_the_binding(server):
    """A reply to another nonce, or a digest altered in transit, cannot pass: the checks are
    run on a real response from the server, then on altered copies of it."""
    from inference_server.attestation.verify import check_binding

    nonce = bytes(range(16, 48))
    body = requests.post(f"{server}/v1/attestation", json={"nonce": nonce.hex()}, timeout=30).json()
    checks, _ = check_binding(nonce, body)
    assert [c.result for c in checks] == ["passed"] * 3

    wrong_nonce, _ = check_binding(bytes(32), body)
    assert [c.result for c in wrong_nonce] == ["FAILED"] * 3

    altered = {
        **body,
        "measurements": {**body["measurements"], "model_digest": "sha256:" + "0" * 64},
    }
    checks, _ = check_binding(nonce, altered)
    assert {c.name: c.result for c in checks} == {
        "nonce": "passed",
        "report-data": "FAILED",
        "quote-binding": "FAILED",
    }
