"""``POST /v1/attestation`` on the app built around the real tiny pipeline, with quotes from the
configfs-tsm-like tree: the binding is recomputed here from what the response claims."""

from __future__ import annotations

import base64
import subprocess

import pytest
from server_testlib import LoadedEngine
from tsm_fixture import ConfigfsTsm

from inference_server.attestation.layout import Measurements, quote_report_data, report_data
from inference_server.attestation.manifest import model_digest
from inference_server.attestation.provider import ConfigfsTsmProvider, NoTeeProvider
from inference_server.attestation.service import EXTENSION, Attestor, TokenBucket

NONCE = bytes(range(32))


@pytest.fixture
def tsm(tmp_path):
    with ConfigfsTsm(tmp_path / "tsm" / "report") as emulated:
        yield emulated


def attested_app(app_factory, engine, model_dir, provider, **attestor):
    app = app_factory(LoadedEngine(engine))
    attestation = Attestor(provider, model_dir, version="9.9.9", **attestor)
    attestation.start(background=False)
    app.extensions[EXTENSION] = attestation
    return app.test_client()


def test_evidence_binds_nonce_model_and_version(app_factory, engine, tiny_model_dir, tsm):
    client = attested_app(
        app_factory, engine, tiny_model_dir, ConfigfsTsmProvider(tsm.root), image_digest="sha256:ab"
    )
    response = client.post("/v1/attestation", json={"nonce": NONCE.hex()})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    digest, files = model_digest(tiny_model_dir)
    assert body["measurements"] == {
        "model_digest": digest,
        "model_files": files,
        "server_version": "9.9.9",
        "image_digest": "sha256:ab",
    }
    assert body["provider"] == "tdx_guest" and body["nonce"] == NONCE.hex()
    expected = report_data(NONCE, Measurements(digest, "9.9.9", "sha256:ab"))
    assert body["report_data"] == expected.hex()
    assert quote_report_data(base64.b64decode(body["quote"])) == expected
    assert tsm.quotes == [expected]


def test_model_digest_is_reproducible_with_coreutils(tiny_model_dir, tmp_path):
    """The documented shell recipe (docs/tdx-migration.md) gives the same digest, and a hidden
    download-metadata file changes nothing while a changed weight file does."""
    recipe = (
        "cd \"$1\" && find -L . -type f -not -path '*/.*' -printf '%P\\n' | LC_ALL=C sort "
        '| while IFS= read -r f; do sha256sum "$f"; done | sha256sum | cut -d" " -f1'
    )
    copy = tmp_path / "model"
    subprocess.run(["cp", "-r", str(tiny_model_dir), str(copy)], check=True)
    (copy / ".cache").mkdir()
    (copy / ".cache" / "download.json").write_text("{}")
    shell = subprocess.run(
        ["bash", "-c", recipe, "sh", str(copy)], capture_output=True, text=True, check=True
    )
    digest, _ = model_digest(copy)
    assert digest == "sha256:" + shell.stdout.strip()
    assert digest == model_digest(tiny_model_dir)[0]
    weights = next(copy.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert model_digest(copy)[0] != digest


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "nonce: is required"),
        ({"nonce": 12}, "nonce: must be a hex string"),
        ({"nonce": "zz" * 32}, "nonce: must be hexadecimal"),
        ({"nonce": "ab" * 8 + "a"}, "nonce: must be hexadecimal"),
        ({"nonce": "ab" * 15}, "nonce: must be 16 to 64 bytes, got 15"),
        ({"nonce": "ab" * 65}, "nonce: must be 16 to 64 bytes, got 65"),
    ],
)
def test_bad_nonce_is_a_400_naming_the_field(
    app_factory, engine, tiny_model_dir, tsm, body, message
):
    client = attested_app(app_factory, engine, tiny_model_dir, ConfigfsTsmProvider(tsm.root))
    response = client.post("/v1/attestation", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["param"] == "nonce" and error["message"].startswith(message)
    assert tsm.quotes == []


def test_not_in_a_td_is_a_501_without_a_quote(app_factory, engine, tiny_model_dir):
    client = attested_app(app_factory, engine, tiny_model_dir, NoTeeProvider("not running in a TD"))
    response = client.post("/v1/attestation", json={"nonce": NONCE.hex()})
    assert response.status_code == 501
    body = response.get_json()
    assert body["error"]["code"] == "not_in_tee"
    assert "quote" not in response.get_data(as_text=True)


def test_provider_failure_is_a_503_with_retry_after(app_factory, engine, tiny_model_dir, tsm):
    tsm.failures = 1
    client = attested_app(app_factory, engine, tiny_model_dir, ConfigfsTsmProvider(tsm.root))
    response = client.post("/v1/attestation", json={"nonce": NONCE.hex()})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "attestation_failed"
    assert response.headers["Retry-After"] == "5"


def test_rate_limited_with_retry_after(app_factory, engine, tiny_model_dir, tsm):
    client = attested_app(
        app_factory, engine, tiny_model_dir, ConfigfsTsmProvider(tsm.root), per_minute=1, burst=2
    )
    codes = [client.post("/v1/attestation", json={"nonce": NONCE.hex()}) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].get_json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(codes[2].headers["Retry-After"]) <= 60
    assert len(tsm.quotes) == 2


def test_token_bucket_refills_over_time():
    now = [0.0]
    bucket = TokenBucket(per_minute=60, burst=1, clock=lambda: now[0])
    bucket.take()
    with pytest.raises(Exception, match="retry in 1s"):
        bucket.take()
    now[0] = 1.0
    bucket.take()


def test_unmeasured_model_is_a_503(app_factory, engine, tmp_path, tsm):
    client = attested_app(app_factory, engine, tmp_path / "missing", ConfigfsTsmProvider(tsm.root))
    response = client.post("/v1/attestation", json={"nonce": NONCE.hex()})
    assert response.status_code == 503
    assert "could not be measured" in response.get_json()["error"]["message"]
    assert str(tmp_path) not in response.get_data(as_text=True)
