"""Attacks seen on the server, each pinned: a poisoned prompt in a merged batch, nested JSON,
requests that can never fit the queue, spoofed Host headers, partial image files."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import requests
from server_testlib import FakeEngine, LoadedEngine, wait_for

from inference_server.batcher import Call
from inference_server.store import ImageStore

POISON = "x\ud800"  # a lone surrogate: valid JSON ("x\\ud800"), no valid UTF-8


def test_poisoned_prompt_in_a_merged_batch_fails_alone(engine, app_factory):
    """Bypassing HTTP validation, the real tokenizer raises on the poisoned call: the merged
    batch is retried call by call, so only that call fails and the others get their images."""
    loaded = LoadedEngine(engine, gated=True)
    app = app_factory(loaded)
    batcher = app.extensions["t2i"].batcher
    calls = [
        Call([prompt], "", [i], 512, 512, 1, 0.0) for i, prompt in enumerate(["a", POISON, "b"])
    ]
    blocker = Call(["first"], "", [9], 512, 512, 1, 0.0)
    batcher.submit([blocker])
    assert loaded.entered.wait(60)
    batcher.submit(calls)  # queued behind the blocker: merged into one batch of 3
    loaded.gate.set()
    assert blocker.future.result(120).images
    assert len(calls[0].future.result(120).images) == 1
    assert len(calls[2].future.result(120).images) == 1
    with pytest.raises(Exception):  # noqa: B017  (whatever the tokenizer raises)
        calls[1].future.result(120)
    assert loaded.batches[:2] == [1, 3], "the three calls were merged into one batch first"


def test_lone_surrogate_is_a_400_naming_the_field_and_the_batch_completes(engine, app_factory):
    loaded = LoadedEngine(engine, gated=True)
    app = app_factory(loaded)
    results: dict[str, object] = {}

    def send(name: str, body: dict) -> None:
        raw = json.dumps(body)  # escapes the surrogate, as a client's JSON would
        results[name] = app.test_client().post(
            "/api/text2image", data=raw, content_type="application/json"
        )

    first = threading.Thread(target=send, args=("first", {"prompt": "a", "step": 1}))
    first.start()
    assert loaded.entered.wait(60)
    others = [
        threading.Thread(target=send, args=(name, body))
        for name, body in (
            ("good", {"prompt": "b", "step": 1}),
            ("poison", {"prompt": POISON, "step": 1}),
            ("negative", {"prompt": "c", "negative_prompt": POISON, "step": 1}),
        )
    ]
    for thread in others:
        thread.start()
    wait_for(lambda: "poison" in results and "negative" in results, 60, "poisoned answers")
    loaded.gate.set()
    for thread in [first, *others]:
        thread.join(120)
    assert results["first"].status_code == 200 and results["good"].status_code == 200
    for name, field in (("poison", "prompt"), ("negative", "negative_prompt")):
        response = results[name]
        assert response.status_code == 400 and response.json["field"] == field
        assert "surrogate" in response.json["message"]
    openai = app.test_client().post(
        "/v1/images/generations",
        data=json.dumps({"prompt": POISON}),
        content_type="application/json",
    )
    assert openai.status_code == 400 and openai.json["error"]["param"] == "prompt"


@pytest.mark.parametrize("route", ["/api/text2image", "/v1/images/generations"])
def test_deeply_nested_json_is_a_400(app_factory, route):
    app = app_factory(FakeEngine())
    response = app.test_client().post(route, data="[" * 50000, content_type="application/json")
    assert response.status_code == 400
    assert "nested too deeply" in response.get_data(as_text=True)


def test_request_larger_than_the_queue_is_a_400_not_429(app_factory):
    app = app_factory(FakeEngine(), max_queue=3)
    client = app.test_client()
    seed = client.post("/api/text2image", json={"prompt": "p", "number": 2, "batch": 2})
    assert seed.status_code == 400 and seed.json["field"] == "number"
    assert "Retry-After" not in seed.headers
    openai = client.post("/v1/images/generations", json={"prompt": "p", "n": 4})
    assert openai.status_code == 400 and openai.json["error"]["param"] == "n"
    assert client.post("/api/text2image", json={"prompt": "p", "number": 3}).status_code == 200


@pytest.mark.parametrize("value", [0, False, [], ""])
def test_falsy_response_format_is_rejected(app_factory, value):
    app = app_factory(FakeEngine())
    body = {"prompt": "p", "response_format": value}
    response = app.test_client().post("/v1/images/generations", json=body)
    assert response.status_code == 400 and response.json["error"]["param"] == "response_format"


def test_steps_on_the_seed_api_is_refused_not_ignored(app_factory):
    app = app_factory(FakeEngine())
    response = app.test_client().post("/api/text2image", json={"prompt": "p", "steps": 2})
    assert response.status_code == 400 and response.json["field"] == "steps"


def _urls(client, headers: dict[str, str]) -> list[str]:
    seed = client.post("/api/text2image", json={"prompt": "p"}, headers=headers)
    openai = client.post("/v1/images/generations", json={"prompt": "p"}, headers=headers)
    return [seed.json["output"][0]["url"], openai.json["data"][0]["url"]]


SPOOFS = [
    {"Host": "evil.example.com"},
    {"Host": "a b"},
    {"Host": "evil.example.com", "X-Forwarded-Host": "evil.example.com"},
    {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example.com"},
]


@pytest.mark.parametrize("headers", SPOOFS)
def test_host_spoofing_does_not_change_urls(cli_server, headers):
    import requests

    seed = requests.post(
        f"{cli_server.base}/api/text2image", json={"prompt": "p", "step": 1}, headers=headers
    )
    openai = requests.post(
        f"{cli_server.base}/v1/images/generations",
        json={"prompt": "p", "step": 1},
        headers=headers,
    )
    for url in (seed.json()["output"][0]["url"], openai.json()["data"][0]["url"]):
        assert url.startswith(f"{cli_server.base}/images/"), url


def test_public_base_url_wins_over_every_header(app_factory):
    app = app_factory(FakeEngine(), public_base_url="https://t2i.example.com/gen")
    for url in _urls(app.test_client(), SPOOFS[3]):
        assert url.startswith("https://t2i.example.com/gen/images/"), url


def test_forwarded_headers_only_when_trusted(app_factory):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pub.example.com"}
    trusted = app_factory(FakeEngine(), trust_forwarded_headers=True).test_client()
    assert all(u.startswith("https://pub.example.com/images/") for u in _urls(trusted, headers))
    malformed = {"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": "a b"}
    assert all(u.startswith("http://localhost/images/") for u in _urls(trusted, malformed))
    untrusted = app_factory(FakeEngine()).test_client()
    assert all(u.startswith("http://localhost/images/") for u in _urls(untrusted, headers))


class BrokenImage:
    """Writes part of a PNG, then fails: as a kill or a full disk in the middle of a save."""

    def save(self, path, format):
        with open(path, "wb") as handle:
            handle.write(b"\x89PNG\r\n\x1a\n partial")
        raise OSError("No space left on device")


def test_a_failed_write_leaves_no_file_to_serve(tmp_path):
    store = ImageStore(tmp_path / "out")
    request_id = store.new_id()
    with pytest.raises(OSError, match="No space"):
        store.save(request_id, "0_0.png", BrokenImage())
    assert store.resolve(request_id, "0_0.png") is None
    # Nothing but the writer's marker (removed on release): no PNG, no temporary file.
    assert [p.name for p in (tmp_path / "out" / request_id).iterdir()] == [".writing"]


def test_leftover_temporary_files_are_removed_at_start_up(tmp_path):
    store = ImageStore(tmp_path / "out")
    request_id = store.new_id()
    (tmp_path / "out" / request_id).mkdir()
    leftover = tmp_path / "out" / request_id / ".0_0.png.deadbeef.tmp"
    leftover.write_bytes(b"partial")
    ImageStore(tmp_path / "out")
    assert not leftover.exists()


def test_wrong_method_is_counted_on_its_route(app_factory):
    app = app_factory(FakeEngine())
    client = app.test_client()
    assert client.get("/api/text2image").status_code == 405
    assert client.get("/no/such/path").status_code == 404
    text = client.get("/metrics").get_data(as_text=True)
    assert 't2i_http_requests_total{route="/api/text2image",status="405"} 1.0' in text
    assert 't2i_http_requests_total{route="unmatched",status="404"} 1.0' in text


def test_responses_waitress_makes_itself_are_counted(cli_server):
    """A request line waitress cannot parse never reaches Flask; it is still counted."""
    with socket.create_connection(("127.0.0.1", cli_server.port), timeout=10) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 400")
    text = requests.get(f"{cli_server.base}/metrics", timeout=10).text
    assert 't2i_http_requests_total{route="transport",status="400"}' in text
