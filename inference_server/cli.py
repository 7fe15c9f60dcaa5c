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

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields included. Prompts only when --log-prompts."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _env(name: str, default):
    value = os.environ.get(f"T2I_{name.upper().replace('-', '_')}")
    if value is None:
        return default
    return type(default)(value) if not isinstance(default, bool) else value.lower() == "true"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ServerConfig()
    parser = argparse.ArgumentParser(prog="t2i-server", description=__doc__)
    add = parser.add_argument
    add("--model-dir", default=_env("model_dir", "/models/stabilityai/sdxl-turbo"))
    add("--model-name", default=_env("model_name", defaults.model_name))
    add("--host", default=_env("host", "0.0.0.0"))
    add("--port", type=int, default=_env("port", 5000))
    add("--output-dir", default=_env("output_dir", str(defaults.output_dir)))
    add("--default-steps", type=int, default=_env("default_steps", defaults.default_steps))
    add("--max-batch", type=int, default=_env("max_batch", defaults.max_batch))
    add("--max-queue", type=int, default=_env("max_queue", defaults.max_queue))
    add("--backend", default=_env("backend", "auto"))
    add("--dtype", default=_env("dtype", "auto"), choices=["auto", "bf16", "fp32"])
    add("--threads", type=int, default=_env("threads", 0), help="0 = from the CPU limit")
    add("--warmup-sizes", default=_env("warmup_sizes", "512x512"), help="comma-separated")
    add("--retention-max-requests", type=int, default=defaults.retention_max_requests)
    add("--retention-max-bytes", type=int, default=defaults.retention_max_bytes)
    add("--request-timeout", type=float, default=defaults.request_timeout_seconds)
    add("--http-threads", type=int, default=_env("http_threads", 16))
    add("--log-prompts", action="store_true", default=_env("log_prompts", False))
    return parser.parse_args(argv)


def build(args: argparse.Namespace):
    """Config + engine + app from parsed flags (kept apart from serving for tests)."""
    from inference_server.app import create_app
    from inference_server.config import SIZES
    from inference_server.engine.backends import resolve_backend
    from inference_server.engine.pipeline import DiffusersEngine, EngineConfig

    resolve_backend(args.backend)  # unknown backend: fail now, with the valid names
    unknown = [s for s in args.warmup_sizes.split(",") if s not in SIZES]
    if unknown:
        raise ValueError(f"--warmup-sizes: unknown size(s) {', '.join(unknown)}")
    config = ServerConfig(
        model_name=args.model_name,
        output_dir=Path(args.output_dir),
        default_steps=args.default_steps,
        max_batch=args.max_batch,
        max_queue=args.max_queue,
        request_timeout_seconds=args.request_timeout,
        retention_max_requests=args.retention_max_requests,
        retention_max_bytes=args.retention_max_bytes,
        log_prompts=args.log_prompts,
    )
    engine = DiffusersEngine(
        EngineConfig(
            model_dir=Path(args.model_dir),
            model_name=args.model_name,
            backend=args.backend,
            dtype=args.dtype,
            threads=args.threads,
            warmup_sizes=tuple(SIZES[s] for s in args.warmup_sizes.split(",")),
        )
    )
    return create_app(config, engine)


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    args = parse_args(argv)
    try:
        app = build(args)
    except ValueError as error:
        print(f"t2i-server: {error}", file=sys.stderr)
        return 2
    from inference_server.engine.loader import ModelLoadError, check_model_dir

    try:
        check_model_dir(Path(args.model_dir))
    except ModelLoadError as error:
        print(f"t2i-server: {error}", file=sys.stderr)
        return 2
    app.extensions["t2i"].start()
    from waitress import serve

    logging.getLogger(__name__).info("serving", extra={"host": args.host, "port": args.port})
    serve(app, host=args.host, port=args.port, threads=args.http_threads, channel_timeout=1200)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
