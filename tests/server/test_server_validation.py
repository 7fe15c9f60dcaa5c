"""Bad input: a 4xx naming the field, no traceback, nothing queued; paths outside → 404."""

from __future__ import annotations

import http.client
import io
import json
import uuid

import pytest
import requests
from PIL import Image

OK = {"prompt": "a panda", "step": 1}
SEED_CASES = [
    (b"{", "body"),
    (b'{"prompt": "a panda",}', "body"),
    (b"[1, 2]", "body"),
    (b'"a panda"', "body"),
    (b"null", "body"),
    (b"", "body"),
    (b"\xff\xfe", "body"),
    ({}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": 5}, "prompt"),
    ({"prompt": ["a"]}, "prompt"),
    ({"prompt": "x" * 4001}, "prompt"),
    ({**OK, "number": "1"}, "number"),
    ({**OK, "number": True}, "number"),
    ({**OK, "number": 1.5}, "number"),
    ({**OK, "number": 0}, "number"),
    ({**OK, "number": 17}, "number"),
    ({**OK, "number": 4, "batch": 5}, "number"),
    ({**OK, "batch": 0}, "batch"),
    ({**OK, "batch": 17}, "batch"),
    ({**OK, "batch": False}, "batch"),
    ({**OK, "size": "256x256"}, "size"),
    ({**OK, "size": "1024X1024"}, "size"),
    ({**OK, "size": 512}, "size"),
    ({**OK, "size": ""}, "size"),
    ({**OK, "step": 0}, "step"),
    ({**OK, "step": 51}, "step"),
    ({**OK, "step": "4"}, "step"),
    ({**OK, "guidance_scale": "high"}, "guidance_scale"),
    ({**OK, "guidance_scale": -1}, "guidance_scale"),
    ({**OK, "seed": -1}, "seed"),
    ({**OK, "seed": "7"}, "seed"),
    ({**OK, "negative_prompt": 3}, "negative_prompt"),
]
OPENAI_CASES = [
    (b"{", "body"),
    ({"n": 1}, "prompt"),
    ({"prompt": "p", "n": True}, "n"),
    ({"prompt": "p", "n": 0}, "n"),
    ({"prompt": "p", "size": "256x256"}, "size"),
    ({"prompt": "p", "response_format": "xml"}, "response_format"),
    ({"prompt": "p", "steps": 99}, "steps"),
]


def send(client, route: str, body):
    if isinstance(body, bytes):
        return client.post(route, data=body, content_type="application/x-www-form-urlencoded")
    return client.post(route, data=json.dumps(body))


def assert_no_work(session_app, before: set[str]) -> None:
    runtime = session_app.extensions["t2i"]
    assert runtime.batcher.depth == 0
    assert {p.name for p in runtime.config.output_dir.iterdir()} == before


@pytest.mark.parametrize(("body", "field"), SEED_CASES)
def test_seed_api_rejects_bad_input(client, session_app, body, field):
    before = {p.name for p in session_app.extensions["t2i"].config.output_dir.iterdir()}
    response = send(client, "/api/text2image", body)
    assert response.status_code == 400
    error = response.json
    assert error["status"] == "error" and error["field"] == field
    assert error["message"].startswith(f"{field}:") or field == "body"
    assert field in error["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    assert_no_work(session_app, before)


@pytest.mark.parametrize(("body", "field"), OPENAI_CASES)
def test_openai_api_rejects_bad_input(client, session_app, body, field):
    before = {p.name for p in session_app.extensions["t2i"].config.output_dir.iterdir()}
    response = send(client, "/v1/images/generations", body)
    assert response.status_code == 400
    error = response.json["error"]
    assert error["param"] == field and field in error["message"]
    assert error["type"] == "invalid_request_error"
    assert "Traceback" not in response.get_data(as_text=True)
    assert_no_work(session_app, before)


@pytest.mark.parametrize("route", ["/api/text2image", "/v1/images/generations"])
def test_oversized_body_is_413(client, route):
    body = json.dumps({"prompt": "a" * 70_000}).encode()
    response = client.post(route, data=body)
    assert response.status_code == 413
    text = response.get_data(as_text=True)
    assert "body" in text and "Traceback" not in text


def test_oversized_body_is_413_over_real_http(cli_server):
    response = requests.post(
        f"{cli_server.base}/api/text2image", data=b"{" + b" " * 200_000 + b"}", timeout=30
    )
    assert response.status_code == 413
    assert response.json()["field"] == "body"


def test_wrong_method_and_unknown_route_are_clean(client):
    for response in (client.get("/api/text2image"), client.get("/nope")):
        assert response.status_code in (404, 405)
        assert response.json["status"] == "error"
        assert "Traceback" not in response.get_data(as_text=True)


@pytest.fixture(scope="module")
def served_image(cli_server) -> tuple[str, str]:
    response = requests.post(f"{cli_server.base}/api/text2image", json=OK, timeout=60)
    assert response.status_code == 200
    return response.json()["id"], "0_0.png"


def raw_get(port: int, path: str, redirects: int = 1) -> tuple[int, bytes]:
    """Send ``path`` byte for byte (no client-side normalisation of ``..`` or escapes);
    follow one same-server redirect (werkzeug merges ``//`` with a 308)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        status, data = response.status, response.read()
        location = response.getheader("Location", "")
    finally:
        connection.close()
    if status in (301, 302, 307, 308) and redirects:
        target = location.split(f"127.0.0.1:{port}", 1)[-1]
        assert target.startswith("/images/"), location
        return raw_get(port, target, redirects - 1)
    return status, data


def outside_png(tmp_path) -> bytes:
    path = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path)
    return path.read_bytes()


def test_served_image_control(cli_server, served_image):
    request_id, name = served_image
    status, data = raw_get(cli_server.port, f"/images/{request_id}/{name}")
    assert status == 200 and Image.open(io.BytesIO(data)).size == (512, 512)


@pytest.mark.parametrize(
    "path",
    [
        "/images/../../etc/passwd",
        "/images/{id}/../../../etc/passwd",
        "/images/{id}/..%2f..%2f..%2fetc%2fpasswd",
        "/images/%2e%2e/%2e%2e/etc/passwd",
        "/images/%2e%2e%2f%2e%2e%2fetc/passwd",
        "/images/{id}%2f..%2f{id}/0_0.png",
        "/images/{id}%2F0_0.png/0_0.png",
        "/images/%252e%252e/0_0.png",
        "/images//etc/passwd",
        "/images/%2fetc%2fpasswd/0_0.png",
        "/images/{id}/%2fetc%2fpasswd",
        "/images/not-a-uuid/0_0.png",
        "/images/{upper}/0_0.png",
        "/images/{id}/0_0.png.bak",
        "/images/{id}/0_0.txt",
        "/images/{id}/..",
        "/images/{id}/",
        "/images/{missing}/0_0.png",
        "/images/{id}/9_9.png",
    ],
)
def test_paths_outside_or_malformed_are_404(cli_server, served_image, path):
    request_id, _ = served_image
    path = path.format(id=request_id, upper=request_id.upper(), missing=uuid.uuid4())
    status, data = raw_get(cli_server.port, path)
    assert status == 404, path
    assert b"root:" not in data and b"Traceback" not in data


def test_symlinks_in_output_dir_are_not_followed(cli_server, tmp_path):
    secret = outside_png(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "0_0.png").write_bytes(secret)
    linked_dir = str(uuid.uuid4())
    (cli_server.output_dir / linked_dir).symlink_to(outside, target_is_directory=True)
    linked_file = str(uuid.uuid4())
    (cli_server.output_dir / linked_file).mkdir()
    (cli_server.output_dir / linked_file / "0_0.png").symlink_to(outside / "0_0.png")
    for request_id in (linked_dir, linked_file):
        status, data = raw_get(cli_server.port, f"/images/{request_id}/0_0.png")
        assert status == 404
        assert data != secret
