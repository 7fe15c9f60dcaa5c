"""The operator's evidence → Attested logic (pure), its copy of the report-data layout, and how
Attested folds into the status of a TDX service."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from t2i_operator.attestation import (
    PodEvidence,
    attested_condition,
    check_evidence,
    quote_report_data,
    replace_attested,
    report_data,
)
from t2i_operator.status import Cond
from test_status_conditions import NOW, cond, deployment, status_of

from inference_server.attestation import layout as server_layout

NONCE = bytes(range(32))
MEASURED = {"model_digest": "sha256:" + "1" * 64, "server_version": "0.1.0", "image_digest": ""}
TDX = {"placement": {"pool": "TDX"}}


def tdx_quote(data: bytes, version: int = 4, tee: int = 0x81) -> bytes:
    header = struct.pack("<HHI", version, 2, tee) + bytes(40)
    prefix = struct.pack("<HI", 2, 584) if version == 5 else b""
    return header + prefix + bytes(520) + data + struct.pack("<I", 0)


def evidence_body(nonce=NONCE, measured=MEASURED, quoted=None):
    data = report_data(nonce, measured["model_digest"], measured["server_version"], "")
    return {
        "layout": "t2i-attestation/v1",
        "nonce": nonce.hex(),
        "provider": "tdx_guest",
        "quote": base64.b64encode(tdx_quote(quoted or data)).decode(),
        "report_data": data.hex(),
        "measurements": dict(measured),
    }


@given(
    nonce=st.binary(min_size=16, max_size=64),
    model=st.text(max_size=80),
    version=st.text(max_size=20),
    image=st.text(max_size=80),
)
def test_layout_is_the_servers(nonce, model, version, image):
    server = server_layout.report_data(nonce, server_layout.Measurements(model, version, image))
    assert report_data(nonce, model, version, image) == server


@pytest.mark.parametrize("version", [4, 5])
def test_quote_parsing_is_the_servers(version):
    data = bytes(range(64))
    quote = tdx_quote(data, version)
    assert quote_report_data(quote) == server_layout.quote_report_data(quote) == data
    assert quote_report_data(tdx_quote(data, tee=0)) is None
    assert quote_report_data(quote[:100]) is None


def test_bound_evidence():
    e = check_evidence("p-0", NONCE, 200, evidence_body())
    assert (e.kind, e.provider, e.model_digest) == ("bound", "tdx_guest", MEASURED["model_digest"])


def test_evidence_for_another_nonce_is_a_mismatch():
    e = check_evidence("p-0", bytes(32), 200, evidence_body())
    assert e.kind == "mismatch" and "nonce" in e.detail


def test_an_altered_digest_is_a_mismatch():
    body = evidence_body()
    body["measurements"]["model_digest"] = "sha256:" + "2" * 64
    assert check_evidence("p-0", NONCE, 200, body).kind == "mismatch"


def test_a_replayed_quote_is_a_mismatch():
    body = evidence_body(quoted=b"\x07" * 64)
    e = check_evidence("p-0", NONCE, 200, body)
    assert e.kind == "mismatch" and "report data" in e.detail


def test_malformed_evidence_is_a_mismatch():
    assert check_evidence("p-0", NONCE, 200, {"nonce": NONCE.hex()}).kind == "mismatch"
    assert check_evidence("p-0", NONCE, 200, None).kind == "mismatch"


def test_not_in_tee_and_unavailable():
    body = {"error": {"code": "not_in_tee", "message": "not running in a TD: no configfs-tsm"}}
    e = check_evidence("p-0", NONCE, 501, body)
    assert e.kind == "not_in_tee" and "configfs-tsm" in e.detail
    assert check_evidence("p-0", NONCE, 429, {"error": {"message": "slow"}}).kind == "unavailable"
    assert check_evidence("p-0", NONCE, 0, {"message": "no answer: timed out"}).kind == (
        "unavailable"
    )


def test_attested_true_names_provider_and_time_never_the_quote():
    body = evidence_body()
    c = attested_condition([check_evidence("p-0", NONCE, 200, body)], NOW)
    assert (c.status, c.reason) == ("True", "TDEvidence")
    assert "tdx_guest" in c.message and NOW in c.message
    assert body["quote"] not in c.message and body["report_data"] not in c.message


def test_worst_pod_decides():
    bound = PodEvidence("a", "bound", "bound", "tdx_guest", "sha256:x")
    off = PodEvidence("b", "not_in_tee", "not running in a TD")
    down = PodEvidence("c", "unavailable", "HTTP 0")
    assert attested_condition([bound, down, off], NOW).reason == "NotInTD"
    assert attested_condition([bound, down], NOW).status == "Unknown"
    assert attested_condition([], NOW).reason == "NoReadyPods"


def previous_with(attested: Cond | None) -> dict:
    conditions = [] if attested is None else replace_attested([], attested, NOW, 1)
    return {"conditions": conditions}


def test_not_in_td_makes_a_tdx_service_degraded():
    not_td = Cond("False", "NotInTD", "pod p-0: not running in a TD")
    status = status_of(deployment(), raw=TDX, previous=previous_with(not_td))
    assert cond(status, "Attested")["status"] == "False"
    assert (cond(status, "Degraded")["status"], cond(status, "Degraded")["reason"]) == (
        "True",
        "NotInTD",
    )


def test_attested_tdx_service_is_not_degraded():
    ok = Cond("True", "TDEvidence", "1 Ready pod(s) returned tdx_guest quotes")
    status = status_of(deployment(), raw=TDX, previous=previous_with(ok))
    assert cond(status, "Attested")["reason"] == "TDEvidence"
    assert cond(status, "Degraded")["status"] == "False"
    assert cond(status, "Ready")["status"] == "True"


def test_tdx_service_starts_unknown_and_g8i_has_no_attested():
    assert cond(status_of(deployment(), raw=TDX), "Attested")["status"] == "Unknown"
    types = [c["type"] for c in status_of(deployment())["conditions"]]
    assert "Attested" not in types


def test_replace_attested_writes_only_on_change():
    first = replace_attested([{"type": "Ready", "status": "True"}], Cond("True", "R", "m"), NOW, 3)
    assert [c["type"] for c in first] == ["Ready", "Attested"]
    assert replace_attested(first, Cond("True", "R", "m"), "later", 3) is None
    moved = replace_attested(first, Cond("True", "R", "m2"), "later", 3)
    assert moved[-1]["lastTransitionTime"] == NOW  # same status: transition time kept
    flipped = replace_attested(first, Cond("False", "NotInTD", "x"), "later", 3)
    assert flipped[-1]["lastTransitionTime"] == "later"
