"""Readiness gating, worker death, queue full, retention, model-load errors and the CLI's exit."""

from __future__ import annotations

import shutil
import threading
import uuid
from concurrent.futures import Future

import pytest
import torch
from server_testlib import FakeEngine, free_port, run_cli, wait_for

from inference_server.batcher import Call, WorkerDiedError
from inference_server.engine.loader import ModelLoadError, load_pipeline
from inference_server.engine.pipeline import DiffusersEngine, EngineConfig, warmup_batches

BODY = {"prompt": "a panda", "step": 1}


def test_generation_is_gated_until_ready(app_factory):
    fake = FakeEngine(loaded=False)
    app = app_factory(fake, background=True)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    for response in (
        client.get("/readyz"),
        client.post("/api/text2image", json=BODY),
        client.post("/v1/images/generations", json=BODY),
    ):
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        assert "Traceback" not in response.get_data(as_text=True)
    assert client.post("/v1/images/generations", json=BODY).json["error"]["code"] == "not_ready"
    assert fake.batches == [] and app.extensions["t2i"].batcher.depth == 0
    fake.loaded_event.set()
    wait_for(lambda: client.get("/readyz").status_code == 200, timeout=30, what="ready")
    assert client.post("/api/text2image", json=BODY).status_code == 200


def test_missing_model_dir_keeps_server_unready_with_message(app_factory, tmp_path):
    engine = DiffusersEngine(EngineConfig(model_dir=tmp_path / "no-model"))
    app = app_factory(engine, background=True)
    runtime = app.extensions["t2i"]
    wait_for(lambda: runtime.load_error, timeout=30, what="load error")
    client = app.test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and "does not exist" in response.json["message"]
    assert client.post("/api/text2image", json=BODY).status_code == 503


class WorkerKilled(BaseException):
    """Escapes the batcher's ``except Exception``, so the worker thread dies."""


class DyingEngine(FakeEngine):
    def generate(self, batch):
        raise WorkerKilled


# The worker thread is meant to die here; pytest reports that as an unhandled thread exception.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_worker_death_makes_readyz_fail(app_factory):
    app = app_factory(DyingEngine())
    runtime = app.extensions["t2i"]
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    in_flight: list = []
    sender = threading.Thread(
        target=lambda: in_flight.append(app.test_client().post("/api/text2image", json=BODY))
    )
    sender.start()
    sender.join(30)
    assert in_flight, "the in-flight request must be answered, not left waiting for the timeout"
    assert in_flight[0].status_code == 503
    assert "Traceback" not in in_flight[0].get_data(as_text=True)
    wait_for(lambda: not runtime.batcher.alive, timeout=30, what="worker exit")
    response = client.get("/readyz")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert client.get("/healthz").status_code == 500
    assert client.post("/api/text2image", json=BODY).status_code == 503
    call = Call(["p"], "", [0], 512, 512, 1, 0.0, Future())
    with pytest.raises(WorkerDiedError):
        runtime.batcher.submit([call])


def test_queue_full_is_429_and_nothing_half_accepted(app_factory):
    fake = FakeEngine(block=True)
    app = app_factory(fake, max_batch=1, max_queue=3)
    runtime = app.extensions["t2i"]
    results: list = []

    def send(number: int) -> None:
        body = {**BODY, "number": number}
        results.append(app.test_client().post("/api/text2image", json=body))

    threads = [threading.Thread(target=send, args=(1,))]
    threads[0].start()
    assert fake.entered.wait(30)
    threads.append(threading.Thread(target=send, args=(2,)))
    threads[-1].start()
    wait_for(lambda: runtime.batcher.depth == 2, timeout=30, what="2 queued images")
    client = app.test_client()
    for route, body in (
        ("/api/text2image", {**BODY, "number": 2}),
        ("/v1/images/generations", {"prompt": "p", "n": 2}),
    ):
        response = client.post(route, json=body)
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) > 0
        assert "Traceback" not in response.get_data(as_text=True)
        assert runtime.batcher.depth == 2, "a rejected request must leave nothing queued"
    fake.gate.set()
    for thread in threads:
        thread.join(60)
    assert sorted(r.status_code for r in results) == [200, 200]
    assert fake.batches == [1, 1, 1]
    ids = {r.json["id"] for r in results}
    assert {p.name for p in runtime.config.output_dir.iterdir()} == ids


def test_retention_deletes_oldest_requests(app_factory):
    app = app_factory(FakeEngine(), retention_max_requests=2)
    client = app.test_client()
    bodies = [client.post("/api/text2image", json=BODY).json for _ in range(3)]
    output_dir = app.extensions["t2i"].config.output_dir
    assert {p.name for p in output_dir.iterdir()} == {b["id"] for b in bodies[1:]}
    path = "/" + bodies[0]["output"][0]["url"].split("/", 3)[3]
    assert client.get(path).status_code == 404
    for body in bodies[1:]:
        assert client.get("/" + body["output"][0]["url"].split("/", 3)[3]).status_code == 200


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path):
    return shutil.copytree(tiny_model_dir, tmp_path / "model")


def test_load_missing_dir(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_pipeline(tmp_path / "absent", None)


def test_load_missing_model_index(model_copy):
    (model_copy / "model_index.json").unlink()
    with pytest.raises(ModelLoadError, match=r"model_index\.json is missing"):
        load_pipeline(model_copy, None)


def test_load_invalid_model_index(model_copy):
    (model_copy / "model_index.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_pipeline(model_copy, None)


def test_load_missing_component(model_copy):
    shutil.rmtree(model_copy / "unet")
    with pytest.raises(ModelLoadError, match="lacks pipeline components: unet"):
        load_pipeline(model_copy, None)


def test_load_corrupt_weights(model_copy):
    (weights,) = (model_copy / "unet").glob("*.safetensors")
    weights.write_bytes(b"this is not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot load the pipeline") as caught:
        load_pipeline(model_copy, None)
    assert str(model_copy) in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_load_fp16_variant_only_directory(model_copy):
    """A download of just the ``*.fp16.safetensors`` files loads too (cast to the dtype asked)."""
    for weights in model_copy.glob("*/*.safetensors"):
        weights.rename(weights.with_name(weights.name.replace(".safetensors", ".fp16.safetensors")))
    pipe = load_pipeline(model_copy, torch.float32)
    assert pipe.unet.dtype == torch.float32
    image = pipe(
        "a panda", num_inference_steps=1, guidance_scale=0.0, width=512, height=512
    ).images[0]
    assert image.size == (512, 512)


def test_cli_exits_2_with_one_line_for_missing_model_dir(tmp_path):
    missing = tmp_path / f"no-model-{uuid.uuid4().hex}"
    completed = run_cli(
        "--model-dir",
        str(missing),
        "--port",
        str(free_port()),
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert lines == [f"t2i-server: model directory {missing} does not exist"]


def test_cli_exits_1_with_one_line_when_the_model_fails_to_load(model_copy, tmp_path):
    """The directory passes the start-up check but its weights do not load (as unreadable or
    corrupt files would): the process exits 1 with the reason as the last stderr line, so a pod
    crash-loops and the operator quotes that line, instead of staying up unready forever."""
    (weights,) = (model_copy / "unet").glob("*.safetensors")
    weights.write_bytes(b"this is not a safetensors file")
    completed = run_cli(
        "--model-dir",
        str(model_copy),
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--output-dir",
        str(tmp_path / "out"),
        "--threads",
        "2",
    )
    assert completed.returncode == 1, completed.stderr[-2000:]
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("t2i-server: ") and "cannot load the pipeline" in last
    assert str(model_copy) in last


def test_retention_by_bytes_keeps_the_newest_request(app_factory):
    app = app_factory(FakeEngine(), retention_max_bytes=1)
    client = app.test_client()
    first = client.post("/api/text2image", json=BODY).json
    second = client.post("/api/text2image", json=BODY).json
    output_dir = app.extensions["t2i"].config.output_dir
    assert {p.name for p in output_dir.iterdir()} == {second["id"]}
    assert client.get("/" + second["output"][0]["url"].split("/", 3)[3]).status_code == 200
    assert client.get("/" + first["output"][0]["url"].split("/", 3)[3]).status_code == 404


class FailingEngine(FakeEngine):
    """Fails the first batch only, like a transient engine error."""

    def generate(self, batch):
        if not self.batches:
            self.batches.append(0)
            raise RuntimeError("boom: /secret/path in engine internals")
        return super().generate(batch)


def test_engine_error_is_a_clean_500_and_the_worker_survives(app_factory):
    app = app_factory(FailingEngine())
    client = app.test_client()
    response = client.post("/api/text2image", json=BODY)
    assert response.status_code == 500
    assert response.json == {"status": "error", "message": "internal error", "field": None}
    assert "boom" not in response.get_data(as_text=True)
    assert client.get("/readyz").status_code == 200
    assert client.post("/api/text2image", json=BODY).status_code == 200


def test_request_timeout_is_504(app_factory):
    fake = FakeEngine(block=True)
    app = app_factory(fake, request_timeout_seconds=0.2)
    response = app.test_client().post("/v1/images/generations", json={"prompt": "p"})
    assert response.status_code == 504
    assert response.json["error"]["code"] == "timeout"
    assert "Traceback" not in response.get_data(as_text=True)


def test_cli_rejects_unknown_warmup_size_with_exit_2(tiny_model_dir, tmp_path):
    completed = run_cli(
        "--model-dir",
        str(tiny_model_dir),
        "--warmup-sizes",
        "512x512,640x480",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "t2i-server: --warmup-sizes: unknown size(s) 640x480"
    ]


def test_timed_out_request_is_not_run_later(app_factory):
    """A client that timed out gets 504 and its queued calls are dropped, not computed."""
    fake = FakeEngine(block=True)
    app = app_factory(fake, max_batch=1, request_timeout_seconds=0.5)
    runtime = app.extensions["t2i"]
    response = app.test_client().post("/api/text2image", json={**BODY, "number": 3})
    assert response.status_code == 504
    assert fake.entered.is_set()  # call 0 was running when the client gave up
    fake.gate.set()
    wait_for(lambda: runtime.batcher.depth == 0, timeout=30, what="cancelled calls dropped")
    assert app.test_client().post("/api/text2image", json=BODY).status_code == 200
    assert fake.batches == [1, 1], "calls 1 and 2 of the timed-out request never ran"


class BrokenBackendEngine(FakeEngine):
    def load(self) -> None:
        raise NotImplementedError("backend 'ipex' is not implemented yet")


def test_unexpected_load_failure_is_unready_with_reason(app_factory):
    app = app_factory(BrokenBackendEngine(), background=True)
    runtime = app.extensions["t2i"]
    wait_for(lambda: runtime.load_error, timeout=30, what="load error")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "NotImplementedError: backend 'ipex'" in response.json["message"]
    assert app.test_client().get("/healthz").status_code == 200


def test_warmup_runs_every_size_and_batch_before_ready(tiny_model_dir):
    engine = DiffusersEngine(
        EngineConfig(
            model_dir=tiny_model_dir,
            threads=2,
            warmup_sizes=((512, 512), (1024, 1024)),
            warmup_batches=(1, 2),
        )
    )
    seen: list[tuple[int, int, int, bool]] = []
    real_generate = engine.generate

    def recording(batch):
        seen.append((batch.width, batch.height, len(batch.prompts), engine.ready.is_set()))
        return real_generate(batch)

    engine.generate = recording
    engine.load()
    assert seen == [
        (512, 512, 1, False),
        (512, 512, 2, False),
        (1024, 1024, 1, False),
        (1024, 1024, 2, False),
    ]
    assert engine.ready.is_set()


def test_warmup_batches_follow_the_backend():
    assert warmup_batches("eager", 4) == (1,)
    assert warmup_batches("compile", 3) == (1, 2, 3)


def test_metrics_have_process_series_and_no_created_twins(app_factory):
    """process_* (restarts show as a new process_start_time_seconds) and python_info are on
    the app's own registry; counters and histograms have no `_created` series."""
    app = app_factory(FakeEngine())
    client = app.test_client()
    assert client.post("/api/text2image", json=BODY).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    for series in (
        "process_start_time_seconds",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "python_info{",
        "t2i_http_requests_total{",
        "t2i_request_latency_seconds_bucket{",
    ):
        assert series in text, series
    assert "_created" not in text
