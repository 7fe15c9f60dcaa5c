"""Generation on the real tiny pipeline: files per number x batch, seeds, batching, metrics."""

from __future__ import annotations

import io
import threading

from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from server_testlib import FakeEngine, LoadedEngine, wait_for


def post(client, **body):
    return client.post("/api/text2image", json=body)


def image_bytes(client, url: str) -> bytes:
    path = url.split("//", 1)[1].split("/", 1)[1]
    response = client.get(f"/{path}")
    assert response.status_code == 200
    return response.data


def test_number_times_batch_files(client, session_app):
    response = post(client, prompt="a panda", number=2, batch=3, step=1, seed=5)
    assert response.status_code == 200, response.json
    body = response.json
    names = [output["url"].rsplit("/", 1)[1] for output in body["output"]]
    expected = [f"{i}_{j}.png" for i in range(2) for j in range(3)]
    assert names == expected
    directory = session_app.extensions["t2i"].config.output_dir / body["id"]
    assert sorted(p.name for p in directory.iterdir()) == sorted(expected)
    assert body["meta"]["input"]["number"] == 2 and body["meta"]["input"]["batch"] == 3
    latencies = [output["latencySeconds"] for output in body["output"]]
    assert latencies[:3] == [latencies[0]] * 3 and latencies[3:] == [latencies[3]] * 3
    assert body["generationTimeSeconds"] == max(latencies) > 0
    assert body["averageImageGenerationTimeSeconds"] == body["generationTimeSeconds"] / 2
    pixels = set()
    for output in body["output"]:
        image = Image.open(io.BytesIO(image_bytes(client, output["url"])))
        assert image.format == "PNG" and image.size == (512, 512)
        pixels.add(image.tobytes())
    assert len(pixels) == 6, "each image has its own seed"


def test_same_seed_same_image_different_seed_differs(client):
    def generate(seed: int) -> tuple[bytes, bytes]:
        response = post(client, prompt="a panda", seed=seed, step=1)
        assert response.status_code == 200
        assert response.json["meta"]["input"]["seed"] == seed
        data = image_bytes(client, response.json["output"][0]["url"])
        return data, Image.open(io.BytesIO(data)).tobytes()

    first, again, other = generate(42), generate(42), generate(43)
    assert first == again
    assert first[1] != other[1]


def test_concurrent_requests_merge_into_one_batch(engine, app_factory):
    gated = LoadedEngine(engine, gated=True)
    app = app_factory(gated, max_batch=4)
    runtime = app.extensions["t2i"]
    results: list = []

    def send(seed: int) -> None:
        response = app.test_client().post(
            "/api/text2image", json={"prompt": "a panda", "step": 1, "seed": seed}
        )
        results.append(response)

    threads = [threading.Thread(target=send, args=(0,))]
    threads[0].start()
    assert gated.entered.wait(30), "the first request never reached the engine"
    for seed in (1, 2, 3):
        threads.append(threading.Thread(target=send, args=(seed,)))
        threads[-1].start()
    wait_for(lambda: runtime.batcher.depth == 3, timeout=30, what="3 queued images")
    gated.gate.set()
    for thread in threads:
        thread.join(60)
    assert [r.status_code for r in results] == [200] * 4
    assert gated.batches == [1, 3]
    assert len({r.json["id"] for r in results}) == 4
    batch_sizes = metric_samples(app.test_client(), "t2i_batch_size")
    assert batch_sizes[("t2i_batch_size_count", ())] == 2
    assert batch_sizes[("t2i_batch_size_sum", ())] == 4
    assert batch_sizes[("t2i_batch_size_bucket", (("le", "2.0"),))] == 1


def test_only_compatible_calls_merge(app_factory):
    fake = FakeEngine(block=True)
    app = app_factory(fake, max_batch=4)
    runtime = app.extensions["t2i"]
    results: list = []

    def send(size: str) -> None:
        client = app.test_client()
        results.append(client.post("/api/text2image", json={"prompt": "p", "size": size}))

    threads = [threading.Thread(target=send, args=("512x512",))]
    threads[0].start()
    assert fake.entered.wait(30)
    for depth, size in enumerate(("512x512", "1024x1024", "512x512"), start=1):
        threads.append(threading.Thread(target=send, args=(size,)))
        threads[-1].start()
        wait_for(lambda d=depth: runtime.batcher.depth == d, timeout=30, what="queued")
    fake.gate.set()
    for thread in threads:
        thread.join(60)
    assert [r.status_code for r in results] == [200] * 4
    assert fake.batches == [1, 2, 1]


def metric_samples(client, name: str) -> dict:
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    raise AssertionError(f"{name} not exposed")


def test_metrics_expose_documented_series(client):
    assert post(client, prompt="a panda", step=1).status_code == 200
    assert client.post("/api/text2image", data=b"{").status_code == 400
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    names = {f.name for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert {
        "t2i_http_requests",
        "t2i_queue_depth_images",
        "t2i_images_generated",
        "t2i_request_latency_seconds",
        "t2i_inference_seconds",
        "t2i_batch_size",
        "t2i_ready",
    } <= names
    requests_total = metric_samples(client, "t2i_http_requests")
    key = (("route", "/api/text2image"), ("status", "200"))
    assert requests_total[("t2i_http_requests_total", key)] >= 1
    key = (("route", "/api/text2image"), ("status", "400"))
    assert requests_total[("t2i_http_requests_total", key)] >= 1
    images = metric_samples(client, "t2i_images_generated")
    assert images[("t2i_images_generated_total", (("size", "512x512"),))] >= 1
    latency = metric_samples(client, "t2i_request_latency_seconds")
    assert latency[("t2i_request_latency_seconds_count", (("size", "512x512"),))] >= 1
    assert metric_samples(client, "t2i_ready")[("t2i_ready", ())] == 1
    assert metric_samples(client, "t2i_queue_depth_images")[("t2i_queue_depth_images", ())] == 0
