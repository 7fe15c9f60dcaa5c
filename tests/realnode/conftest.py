"""The real-node tier: the local control plane PLUS a real kubelet node (containerd, runc, CNI)
running the two images hack/images.sh builds here. Its own session fixture, apart from the kwok
e2e tier's cluster, started only when a test of this directory runs.

Prerequisites (root, apt, the Go toolchain, the package registries) are installed by the
project's scripts; one that cannot be had FAILS the tier naming it (never a skip).

Fixtures:
  real_cluster   LocalCluster with .node (realnode.RealNode) and the images loaded (session)
  images         {"server": ref, "operator": ref, ...} from hack/images.sh (session)
  kube           admin Kubectl for that cluster (session)
  operator_pod   the operator installed with `kubectl apply -k` of an overlay on deploy/ (session)
  model_dir      the tiny SDXL pipeline on the host, readable by uid 1000 (session)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "hack" / "cluster"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import localcluster  # noqa: E402
import overlay  # noqa: E402
import realnode  # noqa: E402
from operator_harness import Kubectl  # noqa: E402
from rn_helpers import tsm_host_dir  # noqa: E402

NODE = realnode.NODE_NAME


def _prerequisite(ok: bool, what: str) -> None:
    if not ok:
        pytest.fail(f"real-node tier: prerequisite missing: {what}", pytrace=False)


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """Both images, built without Docker (cached: seconds when nothing changed)."""
    _prerequisite(os.geteuid() == 0, "root (containerd, kubelet, buildah need it)")
    r = subprocess.run(["bash", str(ROOT / "hack" / "images.sh")], capture_output=True, text=True)
    if r.returncode:
        pytest.fail(f"hack/images.sh failed:\n{r.stderr[-3000:]}", pytrace=False)
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def real_cluster(images, request) -> Iterator[localcluster.LocalCluster]:
    state = Path(tempfile.mkdtemp(prefix="t2i-real-"))
    cluster = localcluster.LocalCluster(state, real_node=True)
    try:
        try:
            cluster.up()
        except Exception as e:  # a prerequisite that could not be had: fail naming it
            pytest.fail(f"real node did not come up: {e}", pytrace=False)
        for key in ("server", "operator"):
            cluster.node.load_image(Path(images[f"{key}_archive"]), images[key])
        yield cluster
    finally:
        cluster.down()
        left = cluster.node.leftovers() if cluster.node else []
        if left or request.session.testsfailed or os.environ.get("T2I_KEEP_CLUSTER_STATE"):
            print(f"real-node state and logs: {state}; left behind: {left or 'nothing'}")
        else:  # state, logs and the tiny model (~70 MB): kept only when something went wrong
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def kube(real_cluster) -> Kubectl:
    return Kubectl(str(real_cluster.kubectl), str(real_cluster.kubeconfig))


@pytest.fixture(scope="session")
def operator_pod(real_cluster, images, kube, tmp_path_factory) -> dict:
    """`kubectl apply -k` of deploy/ with the image built here; Ready on the real node."""
    node = real_cluster.node
    d = overlay.write_operator_overlay(
        tmp_path_factory.mktemp("overlay"),
        images["operator"],
        node.gateway,
        node.api_port,
        NODE,
        realnode.TAINT_KEY,
        # test_real_node_attestation.py: a configfs-tsm-like tree on the node, asked every 5 s
        extra_args=(
            f"--configfs-tsm-host-path={tsm_host_dir(real_cluster)}",
            "--attestation-seconds=5",
        ),
    )
    kube("apply", "-k", str(d))
    kube("-n", "t2i-system", "rollout", "status", "deploy/t2i-operator", "--timeout=180s")
    pods = kube.items("pods", "t2i-system", "app.kubernetes.io/name=t2i-operator")
    assert len(pods) == 1, pods
    return pods[0]


@pytest.fixture(scope="session")
def model_dir(real_cluster) -> Path:
    """The tiny pipeline at <dir>/stabilityai/sdxl-turbo, world-readable (the pod is uid 1000)."""
    root = real_cluster.state / "models"
    target = root / "stabilityai" / "sdxl-turbo"
    subprocess.run(
        [sys.executable, "-m", "inference_server.tiny_model", str(target)],
        check=True,
        capture_output=True,
    )
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode | (0o755 if p.is_dir() else 0o644))
    return root


@pytest.fixture
def namespace(kube) -> Iterator[str]:
    import uuid

    name = f"rn-{uuid.uuid4().hex[:6]}"
    kube("create", "namespace", name)
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)
