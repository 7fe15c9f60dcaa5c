"""The CPU this process runs on: its model name and the ISA flags that decide bf16/int8 speed.

Shared by the benchmark reports and the server's status endpoint (which shows it in the
playground), so both name the machine the same way.
"""

from __future__ import annotations

from pathlib import Path

ISA_FLAGS = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f")


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """CPU model name and which of ``ISA_FLAGS`` it has ("unknown", [] where unreadable)."""
    model, flags = "unknown", set()
    try:
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"model": model, "flags": [flag for flag in ISA_FLAGS if flag in flags]}
