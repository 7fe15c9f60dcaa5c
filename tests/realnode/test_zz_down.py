"""Runs last in the tier (file order): `down` stops everything and leaves nothing behind."""

from __future__ import annotations


def test_down_leaves_no_container_mount_netns_cgroup_or_process(real_cluster, operator_pod):
    """With the operator pod still running (containers, mounts, a netns, cgroups all exist),
    `down` removes every one of them: nothing of this node stays on the machine."""
    node = real_cluster.node
    before = node.leftovers()
    assert any(x.startswith("mount ") for x in before), before
    assert any(x.startswith("netns ") for x in before), before
    assert any(x.startswith("cgroup ") for x in before), before
    real_cluster.down()
    assert node.leftovers() == []
    assert real_cluster.status() == {}
