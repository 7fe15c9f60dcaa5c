"""Torch threads come from the cgroup CPU quota (v2 and v1, own cgroup or an ancestor)."""

from __future__ import annotations

import os
from pathlib import Path

from inference_server.engine.threads import cgroup_cpu_limit, default_thread_count

AVAILABLE = len(os.sched_getaffinity(0))


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def v2_tree(tmp_path: Path, own: str, limits: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    write(root / "cgroup.controllers", "cpu memory\n")
    for directory, cpu_max in limits.items():
        write(root / directory.strip("/") / "cpu.max", cpu_max)
    (root / own.strip("/")).mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-cgroup"
    write(proc, f"0::{own}\n")
    return root, proc


def test_v2_namespaced_quota(tmp_path):
    root, proc = v2_tree(tmp_path, "/", {"/": "150000 100000\n"})
    assert cgroup_cpu_limit(root, proc) == 1.5
    assert default_thread_count(0, root, proc) == 1


def test_v2_unlimited_uses_available_cpus(tmp_path):
    root, proc = v2_tree(tmp_path, "/", {"/": "max 100000\n"})
    assert cgroup_cpu_limit(root, proc) is None
    assert default_thread_count(0, root, proc) == AVAILABLE


def test_v2_smallest_quota_along_the_path_wins(tmp_path):
    own = "/kubepods/pod1/container"
    root, proc = v2_tree(
        tmp_path,
        own,
        {"/kubepods/pod1": "100000 100000\n", own: "max 100000\n", "/kubepods": "800000 100000"},
    )
    assert cgroup_cpu_limit(root, proc) == 1.0


def test_v1_cfs_quota_in_combined_mount(tmp_path):
    root = tmp_path / "cgroup"
    own = "/kubepods/pod1/c1"
    write(root / "cpu,cpuacct" / own.strip("/") / "cpu.cfs_quota_us", "100000\n")
    write(root / "cpu,cpuacct" / own.strip("/") / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-cgroup"
    write(proc, f"4:memory:/x\n2:cpu,cpuacct:{own}\n0::/\n")
    assert cgroup_cpu_limit(root, proc) == 1.0
    assert default_thread_count(0, root, proc) == 1


def test_v1_no_quota(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-cgroup"
    write(proc, "1:cpu:/\n")
    assert cgroup_cpu_limit(root, proc) is None


def test_no_cgroup_files_and_explicit_override(tmp_path):
    assert cgroup_cpu_limit(tmp_path / "none", tmp_path / "none-proc") is None
    assert default_thread_count(0, tmp_path / "none", tmp_path / "none-proc") == AVAILABLE
    root, proc = v2_tree(tmp_path, "/", {"/": "100000 100000\n"})
    assert default_thread_count(7, root, proc) == 7
