"""CLI flags and their T2I_* environment twins; the image store's bounds and safe paths."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from PIL import Image
from server_testlib import run_cli

from inference_server.cli import parse_args
from inference_server.store import ImageStore


def test_defaults_match_the_design_command_line(monkeypatch):
    for name in list(os.environ):
        if name.startswith("T2I_"):
            monkeypatch.delenv(name)
    args = parse_args([])
    assert (args.model_dir, args.port, args.output_dir) == (
        "/models/stabilityai/sdxl-turbo",
        5000,
        "/tmp/sd",
    )
    assert (args.default_steps, args.max_batch, args.backend, args.threads) == (4, 4, "auto", 0)
    assert args.log_prompts is False
    assert args.ui is True


def test_every_flag_reads_its_environment_variable(monkeypatch):
    values = {
        "T2I_MODEL_DIR": "/m/x",
        "T2I_MODEL_NAME": "org/x",
        "T2I_MODEL_ALIASES": "dall-e-3,x2",
        "T2I_HOST": "127.0.0.1",
        "T2I_PORT": "6000",
        "T2I_OUTPUT_DIR": "/out",
        "T2I_DEFAULT_STEPS": "2",
        "T2I_MAX_BATCH": "8",
        "T2I_MAX_QUEUE": "19",
        "T2I_BACKEND": "compile",
        "T2I_DTYPE": "fp32",
        "T2I_THREADS": "3",
        "T2I_WARMUP_SIZES": "512x512,1024x1024",
        "T2I_RETENTION_MAX_REQUESTS": "10",
        "T2I_RETENTION_MAX_BYTES": "11",
        "T2I_RETENTION_MAX_AGE": "12.5",
        "T2I_REQUEST_TIMEOUT": "13",
        "T2I_MAX_BODY_BYTES": "14",
        "T2I_HTTP_THREADS": "15",
        "T2I_LOG_PROMPTS": "true",
        "T2I_UI": "false",
        "T2I_CONNECTION_LIMIT": "16",
        "T2I_IDLE_TIMEOUT": "17",
        "T2I_DRAIN_TIMEOUT": "18",
        "T2I_PUBLIC_BASE_URL": "https://t2i.example.com/base/",
        "T2I_TRUST_FORWARDED_HEADERS": "true",
        "T2I_TSM_REPORT_ROOT": "/cfg/tsm/report",
        "T2I_IMAGE_DIGEST": "sha256:ab",
        "T2I_ATTESTATION_PER_MINUTE": "7.5",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    args = parse_args([])
    assert vars(args) == {
        "model_dir": "/m/x",
        "model_name": "org/x",
        "model_aliases": "dall-e-3,x2",
        "host": "127.0.0.1",
        "port": 6000,
        "output_dir": "/out",
        "default_steps": 2,
        "max_batch": 8,
        "max_queue": 19,
        "backend": "compile",
        "dtype": "fp32",
        "threads": 3,
        "warmup_sizes": "512x512,1024x1024",
        "retention_max_requests": 10,
        "retention_max_bytes": 11,
        "retention_max_age": 12.5,
        "request_timeout": 13.0,
        "max_body_bytes": 14,
        "http_threads": 15,
        "log_prompts": True,
        "ui": False,
        "connection_limit": 16,
        "idle_timeout": 17,
        "drain_timeout": 18.0,
        "public_base_url": "https://t2i.example.com/base",
        "trust_forwarded_headers": True,
        "tsm_report_root": "/cfg/tsm/report",
        "image_digest": "sha256:ab",
        "attestation_per_minute": 7.5,
    }
    assert {f"T2I_{name.upper()}" for name in vars(args)} == set(values)


def test_http_threads_default_covers_every_admitted_request():
    """0 (the default) = one thread per image the queue admits, plus the running batch, plus
    spare: requests beyond the queue reach admission at once and get 429, never wait unseen."""
    args = parse_args(["--max-queue", "20", "--max-batch", "2"])
    assert args.http_threads == 20 + 2 + 8


def test_flag_beats_environment_and_bad_environment_is_ignored_when_flag_given(monkeypatch):
    # Kubernetes service links inject e.g. T2I_PORT=tcp://10.0.0.1:5000 for a Service named t2i.
    monkeypatch.setenv("T2I_PORT", "tcp://10.0.0.1:5000")
    monkeypatch.setenv("T2I_MAX_BATCH", "8")
    args = parse_args(["--port", "5000", "--max-batch", "2"])
    assert (args.port, args.max_batch) == (5000, 2)


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({"T2I_PORT": "tcp://10.0.0.1:5000"}, [], "--port: invalid int value"),
        ({}, ["--max-batch", "0"], "--max-batch must be positive"),
        ({}, ["--default-steps", "51"], "--default-steps must be at most 50"),
        ({"T2I_LOG_PROMPTS": "maybe"}, [], "--log-prompts"),
        ({"T2I_UI": "maybe"}, [], "--ui"),
        ({}, ["--dtype", "fp8"], "--dtype: invalid choice"),
        ({}, ["--max-queue", "15"], "--max-queue must be at least 16 (one maximal request"),
        ({}, ["--public-base-url", "ftp://x"], "--public-base-url must start with http"),
        ({}, ["--public-base-url", "https://h/?q=1"], "--public-base-url must be http(s)://"),
        ({}, ["--drain-timeout", "0"], "--drain-timeout must be positive"),
    ],
)
def test_bad_flags_are_usage_errors(monkeypatch, capsys, env, argv, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_bad_environment_exits_2_without_traceback(tmp_path):
    completed = run_cli("--output-dir", str(tmp_path / "out"), T2I_MAX_QUEUE="lots")
    assert completed.returncode == 2
    assert "--max-queue: invalid int value: 'lots'" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("backend", "env", "message"),
    [
        ("compile", {"CXX": "/nonexistent/g++"}, "needs a C++ compiler for inductor's kernels"),
        ("int8", {"CXX": "/nonexistent/g++"}, "tried /nonexistent/g++"),
        ("ipex", {}, "needs intel_extension_for_pytorch"),
        ("int8", {"T2I_INT8_VAE": "sometimes"}, "T2I_INT8_VAE must be one of off, on"),
    ],
)
def test_cli_refuses_a_backend_this_environment_cannot_run(tmp_path, backend, env, message):
    """An image without the backend's toolchain exits at start with the reason (which the pod's
    termination message carries into the resource's status), not minutes later in warm-up."""
    completed = run_cli("--backend", backend, "--output-dir", str(tmp_path / "out"), **env)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def png() -> Image.Image:
    return Image.new("RGB", (8, 8), (1, 2, 3))


def age(store: ImageStore, request_id: str, seconds: float) -> None:
    past = time.time() - seconds
    for path in (store.root / request_id, *(store.root / request_id).iterdir()):
        os.utime(path, (past, past))


def test_age_bound_deletes_old_requests_and_refuses_to_serve_them(tmp_path):
    store = ImageStore(tmp_path, max_age=60)
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    for request_id in (old, new):
        store.save(request_id, "0_0.png", png())
        store.release(request_id)
    age(store, old, 120)
    assert store.resolve(old, "0_0.png") is None, "expired images are not served"
    assert store.resolve(new, "0_0.png") is not None
    assert store.enforce_retention(keep=new) == [old]
    assert not (tmp_path / old).exists()


def test_leftovers_past_a_bound_are_removed_at_start_up(tmp_path):
    first = ImageStore(tmp_path)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for index, request_id in enumerate(ids):
        first.save(request_id, "0_0.png", png())
        first.release(request_id)
        age(first, request_id, 100 - index)  # ids[0] oldest
    ImageStore(tmp_path, max_requests=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [ids[2]]


def test_retention_never_deletes_a_request_still_writing(tmp_path):
    store = ImageStore(tmp_path, max_requests=1)
    writing, done = str(uuid.uuid4()), str(uuid.uuid4())
    store.save(writing, "0_0.png", png())
    age(store, writing, 50)  # older than done, so first in line for deletion
    store.save(done, "0_0.png", png())
    store.release(done)
    assert store.enforce_retention(keep=done) == []
    store.release(writing)
    assert store.enforce_retention(keep=done) == [writing]


def test_cli_unwritable_output_dir_exits_2_with_one_line(tiny_model_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    completed = run_cli("--model-dir", str(tiny_model_dir), "--output-dir", str(blocker / "out"))
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("t2i-server: ") and str(blocker) in lines[0]
