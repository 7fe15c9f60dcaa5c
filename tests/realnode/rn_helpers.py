"""Helpers of the real-node tier: the CR placed on the real node, pod logs, HTTP to pod IPs."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import realnode
from operator_harness import t2i

TUTORIAL_BODY = {
    "prompt": "A panda listening to music with headphones. highly detailed, 8k.",
    "number": 1,
}


def real_t2i(name: str, namespace: str, server_image: str, model_root: Path, **spec: Any) -> dict:
    """A HostPath-model Text2ImageService pinned to the real node, sized for a 2-core machine."""
    repo, tag = server_image.rsplit(":", 1)
    body: dict[str, Any] = {
        "image": {"repository": repo, "tag": tag, "tagOnlyApi": tag, "pullPolicy": "Never"},
        "model": {
            "source": "HostPath",
            "hostPath": {"path": str(model_root), "type": "Directory"},
        },
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "1", "memory": "6Gi"},
        },
        "server": {"steps": 1},
        "nodeSelector": {"kubernetes.io/hostname": realnode.NODE_NAME},
        "tolerations": [{"key": realnode.TAINT_KEY, "operator": "Exists"}],
    }
    return t2i(name, namespace, **{**body, **spec})


def pod_log(node: realnode.RealNode, namespace: str, pod: str, container: str) -> str:
    """The container's log from the kubelet's pod log dir (`kubectl logs` needs a node address
    that this kubelet cannot publish). Every restart, oldest first."""
    text = ""
    for d in sorted(node.pod_logs.glob(f"{namespace}_{pod}_*/{container}")):
        for f in sorted(d.glob("*.log"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0):
            text += f.read_text(errors="replace")
    return text


def post_json(url: str, body: dict, timeout: float = 120) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def get_bytes(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def condition(obj: dict | None, ctype: str) -> dict:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return {}


def ready_pods(kube, namespace: str, name: str) -> list[dict]:
    pods = kube.items("pods", namespace, f"app.kubernetes.io/instance={name}")
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    ]


def patch_spec(kube: Any, namespace: str, name: str, spec: dict[str, Any]) -> None:
    """A merge patch of the resource's spec, as a user's `kubectl patch` would send it."""
    kube("patch", "t2i", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec}))


def tsm_host_dir(real_cluster) -> Path:
    """The real node's stand-in for configfs-tsm's report directory (the operator's
    --configfs-tsm-host-path in the real-node overlay; test_real_node_attestation.py serves it)."""
    return real_cluster.state / "configfs-tsm" / "report"
