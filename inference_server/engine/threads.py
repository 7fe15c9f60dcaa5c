"""Thread count from the container's CPU limit: PyTorch sizes its pool from the host's cores.

A pod limited to 16 CPUs on a 128-core node would otherwise run 128 threads and be throttled by
the CFS quota on every step. The quota may be set on the process's own cgroup or on an ancestor
(the pod's cgroup above the container's), so the effective limit is the smallest along the path.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def own_cgroups(proc_cgroup: Path = PROC_CGROUP) -> dict[str, str]:
    """Controller → cgroup path of this process ("" is the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2]
    return paths


def _dirs_up(mount: Path, cgroup_path: str) -> list[Path]:
    """The process's cgroup directory under ``mount`` and each ancestor up to the mount.

    Inside a cgroup namespace the path is "/" and the mount already is the container's cgroup;
    when the path does not exist under the mount (a host path seen from a container), only the
    mount itself is looked at.
    """
    relative = cgroup_path.strip("/")
    current = mount / relative if relative else mount
    if not current.is_dir():
        return [mount]
    dirs = [current]
    while current != mount and mount in current.parents:
        current = current.parent
        dirs.append(current)
    return dirs


def _v2_limit(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text(encoding="utf-8").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _v1_limit(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text(encoding="utf-8"))
        period = int((directory / "cpu.cfs_period_us").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max`` or v1 CFS), or None when unlimited."""
    own = own_cgroups(proc_cgroup)
    limits = [_v2_limit(d) for d in _dirs_up(root, own.get("", "/"))]
    if not (root / "cgroup.controllers").is_file():  # cgroup v1 (or hybrid): the cpu controller
        for mount in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"):
            if mount.is_dir():
                limits += [_v1_limit(d) for d in _dirs_up(mount, own.get("cpu", "/"))]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def default_thread_count(
    requested: int = 0, cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
) -> int:
    """``requested`` when > 0; else the CPU limit rounded down (at least 1), bounded by the CPUs
    this process may run on."""
    if requested > 0:
        return requested
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    available = max(1, available or 1)
    limit = cgroup_cpu_limit(cgroup_root, proc_cgroup)
    if limit is None:
        return available
    return max(1, min(available, math.floor(limit)))
