"""What the batcher and the HTTP layer know of an engine, without importing torch.

``BACKENDS`` (the names ``--backend`` accepts), ``BatchRequest`` (one forward pass),
``ModelLoadError`` (the model directory is unusable) and the ``Engine`` protocol the real
diffusers engine (engine.pipeline) and the test engines satisfy.
Importing this module costs nothing: ``import inference_server.app`` stays free of torch, which
the layer contracts in .importlinter enforce.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

# The backend names the server accepts (--backend); "auto" resolves to the measured default
# (engine.backends.resolve_backend). The operator's spec.BACKENDS and the CRD's enum list the
# same names in the same order (tests/unit/test_server_args.py, test_crd_and_install.py).
BACKENDS = ("auto", "eager", "packed", "compile", "int8", "ipex")


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete or corrupt (a message, not a traceback)."""


@dataclass(frozen=True)
class BatchRequest:
    """One forward pass: every image shares size, steps and guidance; prompts and seeds vary."""

    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]
    width: int
    height: int
    steps: int
    guidance_scale: float


class Engine(Protocol):
    """Loads once (``ready`` is set when done), then generates one batch at a time."""

    ready: threading.Event

    def load(self) -> None:
        """Load and warm the model; raise ModelLoadError naming what is wrong with it."""

    def generate(self, batch: BatchRequest) -> list[Any]:
        """One pipeline call: one PIL image per prompt, in order."""
