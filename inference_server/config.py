"""Server settings, parsed once by the CLI and passed to the app factory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SIZES = {"512x512": (512, 512), "1024x1024": (1024, 1024)}


def served_model_ids(model_name: str, aliases: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names the OpenAI API accepts as ``model``: the served id (``--model-name``) first,
    then its last path segment ("sdxl-turbo" for "stabilityai/sdxl-turbo"), then the
    ``--model-alias`` names; no duplicates, no blanks."""
    names = (model_name, model_name.rstrip("/").rsplit("/", 1)[-1], *aliases)
    return tuple(dict.fromkeys(n for n in (x.strip() for x in names) if n))


@dataclass(frozen=True)
class ServerConfig:
    model_name: str = "stabilityai/sdxl-turbo"
    model_aliases: tuple[str, ...] = ()  # more names the OpenAI API accepts as `model`
    output_dir: Path = Path("/tmp/sd")
    default_steps: int = 4
    max_steps: int = 50
    max_batch: int = 4  # images merged into one pipeline call across requests
    max_images_per_request: int = 16  # number x batch
    max_queue: int = 64  # images waiting; beyond this, 429
    request_timeout_seconds: float = 900.0
    max_body_bytes: int = 64 * 1024
    retention_max_requests: int = 1000
    retention_max_bytes: int = 2 << 30
    retention_max_age_seconds: float = 24 * 3600  # 0 = no age bound
    log_prompts: bool = False
    ui: bool = True  # the playground page at /; off for API-only deployments
    public_base_url: str = ""  # base of returned image URLs; "" = the address connected to
    trust_forwarded_headers: bool = False  # honour X-Forwarded-Proto/Host (behind a proxy)
