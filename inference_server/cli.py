"""``t2i-server``: parse flags (or T2I_* environment variables), build the app, serve it with
waitress — one process, one model in memory, request threads, one generation worker."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from inference_server.config import ServerConfig
from inference_server.engine.interface import BACKENDS

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields included. Prompts only when --log-prompts."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _env_name(flag: str) -> str:
    return "T2I_" + flag.lstrip("-").upper().replace("-", "_")


def _add(parser: argparse.ArgumentParser, flag: str, default, help: str, **kwargs) -> None:
    """A flag whose default comes from ``T2I_<FLAG>`` when set. A string default is converted
    by argparse's ``type`` only when the flag is absent, so a bad value in the environment is a
    usage error naming the flag (exit 2), not a traceback, and an explicit flag always wins."""
    env = os.environ.get(_env_name(flag))
    parser.add_argument(
        flag,
        default=default if env is None else env,
        help=f"{help} (env {_env_name(flag)}; default {default})",
        **kwargs,
    )


def _truthy(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ServerConfig()
    parser = argparse.ArgumentParser(prog="t2i-server", description=__doc__)
    _add(parser, "--model-dir", "/models/stabilityai/sdxl-turbo", "diffusers pipeline directory")
    _add(
        parser,
        "--model-name",
        defaults.model_name,
        "the served model's id: meta.input.model, GET /v1/models, the OpenAI `model` accepted",
    )
    _add(
        parser,
        "--model-aliases",
        "",
        "comma-separated extra names the OpenAI API accepts as `model` (e.g. dall-e-3)",
    )
    _add(parser, "--host", "0.0.0.0", "listen address")
    _add(parser, "--port", 5000, "listen port", type=int)
    _add(parser, "--output-dir", str(defaults.output_dir), "where generated PNGs are written")
    _add(
        parser,
        "--default-steps",
        defaults.default_steps,
        "steps when a request gives none",
        type=int,
    )
    _add(parser, "--max-batch", defaults.max_batch, "images per merged pipeline call", type=int)
    _add(parser, "--max-queue", defaults.max_queue, "images waiting before 429", type=int)
    _add(parser, "--backend", "auto", " | ".join(BACKENDS), choices=BACKENDS)
    _add(parser, "--dtype", "auto", "auto | bf16 | fp32", choices=["auto", "bf16", "fp32"])
    _add(parser, "--threads", 0, "torch threads; 0 = from the cgroup CPU limit", type=int)
    _add(parser, "--warmup-sizes", "512x512", "comma-separated sizes warmed before /readyz")
    _add(
        parser,
        "--retention-max-requests",
        defaults.retention_max_requests,
        "keep the images of at most this many requests",
        type=int,
    )
    _add(
        parser,
        "--retention-max-bytes",
        defaults.retention_max_bytes,
        "keep at most this many bytes of images",
        type=int,
    )
    _add(
        parser,
        "--retention-max-age",
        defaults.retention_max_age_seconds,
        "delete images older than this many seconds (0 = no age bound)",
        type=float,
    )
    _add(
        parser,
        "--request-timeout",
        defaults.request_timeout_seconds,
        "seconds a request may wait for its images (then 504)",
        type=float,
    )
    _add(parser, "--max-body-bytes", defaults.max_body_bytes, "larger bodies get 413", type=int)
    _add(
        parser,
        "--http-threads",
        0,
        "request threads; 0 = --max-queue + --max-batch + 8, so every admitted request holds "
        "one and the rest are answered (429) at once",
        type=int,
    )
    _add(
        parser,
        "--connection-limit",
        1000,
        "open connections; at the limit the longest-idle ones are closed",
        type=int,
    )
    _add(
        parser,
        "--idle-timeout",
        60,
        "seconds an idle or stalled connection is kept",
        type=int,
    )
    _add(
        parser,
        "--drain-timeout",
        30.0,
        "seconds a SIGTERM drain may take (keep below the pod's grace period)",
        type=float,
    )
    _add(
        parser,
        "--public-base-url",
        "",
        "base of returned image URLs, e.g. https://t2i.example.com (empty: the address the "
        "client connected to; the Host header is never used)",
    )
    _add(
        parser,
        "--trust-forwarded-headers",
        False,
        "build image URLs from X-Forwarded-Proto/Host (only behind a proxy that sets them)",
        type=_truthy,
        nargs="?",
        const=True,
    )
    _add(
        parser,
        "--log-prompts",
        False,
        "log prompt text (off: prompts can be confidential)",
        type=_truthy,
        nargs="?",
        const=True,
    )
    _add(
        parser,
        "--ui",
        defaults.ui,
        "serve the playground page at / (false: API only, / is 404)",
        type=_truthy,
        nargs="?",
        const=True,
    )
    _add(
        parser,
        "--tsm-report-root",
        "/sys/kernel/config/tsm/report",
        "configfs-tsm report directory for TD quotes (absent = not in a TD)",
    )
    _add(parser, "--image-digest", "", "container image digest reported in attestation evidence")
    _add(
        parser,
        "--attestation-per-minute",
        30.0,
        "POST /v1/attestation requests per minute (bursts of 5), then 429",
        type=float,
    )
    args = parser.parse_args(argv)
    positive = (
        "port",
        "default_steps",
        "max_batch",
        "max_queue",
        "retention_max_requests",
        "retention_max_bytes",
        "request_timeout",
        "max_body_bytes",
        "connection_limit",
        "idle_timeout",
        "drain_timeout",
        "attestation_per_minute",
    )
    for name in positive:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.default_steps > defaults.max_steps:
        parser.error(f"--default-steps must be at most {defaults.max_steps}")
    if args.threads < 0 or args.retention_max_age < 0 or args.http_threads < 0:
        parser.error("--threads, --http-threads and --retention-max-age must not be negative")
    if args.max_queue < defaults.max_images_per_request:
        parser.error(
            f"--max-queue must be at least {defaults.max_images_per_request} "
            "(one maximal request, number x batch), or such requests could never be served"
        )
    if args.public_base_url:
        from inference_server.api.urls import valid_public_base_url

        try:
            args.public_base_url = valid_public_base_url(args.public_base_url)
        except ValueError as error:
            parser.error(f"--public-base-url {error}")
    if args.http_threads == 0:
        args.http_threads = args.max_queue + args.max_batch + 8
    return args


def build(args: argparse.Namespace):
    """Config + engine + app from parsed flags (kept apart from serving for tests)."""
    from inference_server.app import create_app
    from inference_server.attestation import service as attestation
    from inference_server.attestation.provider import detect
    from inference_server.config import SIZES
    from inference_server.engine.backends import missing_requirement
    from inference_server.engine.pipeline import DiffusersEngine, EngineConfig, warmup_batches

    problem = missing_requirement(args.backend)  # also refuses unknown names, listing valid ones
    if problem:
        raise ValueError(problem)
    unknown = [s for s in args.warmup_sizes.split(",") if s not in SIZES]
    if unknown:
        raise ValueError(f"--warmup-sizes: unknown size(s) {', '.join(unknown)}")
    config = ServerConfig(
        model_name=args.model_name,
        model_aliases=tuple(a.strip() for a in args.model_aliases.split(",") if a.strip()),
        output_dir=Path(args.output_dir),
        default_steps=args.default_steps,
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        request_timeout_seconds=args.request_timeout,
        retention_max_requests=args.retention_max_requests,
        retention_max_bytes=args.retention_max_bytes,
        retention_max_age_seconds=args.retention_max_age,
        max_body_bytes=args.max_body_bytes,
        log_prompts=args.log_prompts,
        ui=args.ui,
        public_base_url=args.public_base_url,
        trust_forwarded_headers=args.trust_forwarded_headers,
    )
    engine = DiffusersEngine(
        EngineConfig(
            model_dir=Path(args.model_dir),
            model_name=args.model_name,
            backend=args.backend,
            dtype=args.dtype,
            threads=args.threads,
            warmup_sizes=tuple(SIZES[s] for s in args.warmup_sizes.split(",")),
            warmup_batches=warmup_batches(args.backend, args.max_batch),
        )
    )
    app = create_app(config, engine)
    app.extensions[attestation.EXTENSION] = attestation.Attestor(
        detect(Path(args.tsm_report_root)),
        Path(args.model_dir),
        image_digest=args.image_digest,
        per_minute=args.attestation_per_minute,
    )
    return app


def route_library_logs() -> None:
    """torch, diffusers and transformers install their own stderr handlers and progress bars;
    send their records through the root logger instead, so every log line is JSON."""
    logging.captureWarnings(True)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    torch_logger = logging.getLogger("torch")
    import torch  # noqa: F401  (installs torch's handler, removed below)

    for handler in list(torch_logger.handlers):
        torch_logger.removeHandler(handler)
    torch_logger.propagate = True
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.disable_default_handler()
        library.enable_propagation()
        library.disable_progress_bar()


def _exit_on_load_failure(message: str) -> None:
    """A model that cannot load will not load on retry in this process: exit 1 with the reason
    as the last stderr line (the pod's termination message, quoted by the operator)."""
    logging.shutdown()
    print(f"t2i-server: {message}", file=sys.stderr, flush=True)
    os._exit(1)


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    args = parse_args(argv)
    route_library_logs()
    try:
        app = build(args)
    except (ValueError, OSError) as error:  # bad backend/size; unwritable --output-dir
        print(f"t2i-server: {error}", file=sys.stderr)
        return 2
    from inference_server.engine.loader import ModelLoadError, check_model_dir

    try:
        check_model_dir(Path(args.model_dir))
    except ModelLoadError as error:
        print(f"t2i-server: {error}", file=sys.stderr)
        return 2
    runtime = app.extensions["t2i"]
    runtime.on_load_failure = _exit_on_load_failure
    from inference_server import serving
    from inference_server.drain import Drainer

    # Flask answers oversized bodies with a JSON 413; waitress's own cap is a backstop against
    # huge chunked uploads being buffered at all.
    server = serving.create(
        app,
        host=args.host,
        port=args.port,
        threads=args.http_threads,
        on_transport_error=lambda status: runtime.metrics.requests.labels(
            route="transport", status=str(status)
        ).inc(),
        connection_limit=args.connection_limit,
        channel_timeout=args.idle_timeout,
        cleanup_interval=max(1, min(10, args.idle_timeout // 2)),
        max_request_body_size=max(1 << 20, 4 * args.max_body_bytes),
    )
    drainer = Drainer(runtime, server, args.drain_timeout)
    drainer.install()
    runtime.start()
    app.extensions["t2i_attestation"].start()
    log = logging.getLogger(__name__)
    log.info(
        "serving",
        extra={"host": args.host, "port": server.effective_port, "threads": args.http_threads},
    )
    server.serve_until(drainer.stopped)
    server.shutdown()
    log.info("stopped")
    logging.shutdown()
    sys.stderr.flush()
    # The generation worker may still be inside the pipeline (its results no longer wanted):
    # leave without waiting for it or running interpreter teardown under it.
    os._exit(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
