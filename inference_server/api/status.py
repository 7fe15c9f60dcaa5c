"""What the playground shows about this server: model, backend, CPU, queue depth, limits.

Deliberately public and small: no paths, no environment, no request data — only what a client
may know anyway (the model name is in every tutorial API response) plus the machine it runs on.
"""

from __future__ import annotations

import functools

from inference_server.api.schema import MAX_PROMPT_CHARS
from inference_server.config import SIZES, ServerConfig
from inference_server.cpu import cpu_info


def server_status(
    config: ServerConfig, engine_description: dict, ready: bool, queue_depth: int, cpu: dict
) -> dict:
    """A pure function of the runtime's observations, so the route stays one line."""
    return {
        "model": config.model_name,
        "ready": ready,
        "backend": engine_description.get("backend"),
        "dtype": engine_description.get("dtype"),
        "threads": engine_description.get("threads"),
        "cpu": {"model": cpu["model"], "isa": cpu["flags"]},
        "queue": {"depth": queue_depth, "max": config.max_queue, "maxBatch": config.max_batch},
        "limits": {
            "sizes": list(SIZES),
            "defaultSteps": config.default_steps,
            "maxSteps": config.max_steps,
            "maxImagesPerRequest": config.max_images_per_request,
            "maxPromptChars": MAX_PROMPT_CHARS,
        },
    }


@functools.cache
def machine_cpu() -> dict:
    """Read /proc/cpuinfo once per process: it does not change while we run."""
    return cpu_info()
