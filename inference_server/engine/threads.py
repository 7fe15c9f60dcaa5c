"""Thread count from the container's CPU limit: PyTorch sizes its pool from the host's cores."""

from __future__ import annotations

import math
import os
from pathlib import Path


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max`` or v1 CFS), or None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 else None
    except (OSError, ValueError):
        return None


def default_thread_count(requested: int = 0, cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """``requested`` when > 0; else the CPU limit rounded down, bounded by the CPUs we may use."""
    if requested > 0:
        return requested
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = cgroup_cpu_limit(cgroup_root)
    if limit is None:
        return max(1, available or 1)
    return max(1, min(available or 1, math.floor(limit)))
