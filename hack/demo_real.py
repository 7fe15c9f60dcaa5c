"""`make demo REAL=1`: the same path as `make demo`, with real containers (needs root).

Real: the two images (built here without Docker by hack/images.sh), containerd + runc + a CNI
bridge + a kubelet built from the Kubernetes sources, the operator installed with
`kubectl apply -k` from deploy/ and running in a pod on its ServiceAccount token, the server pod
the operator renders (probes, CPU quota, non-root, HostPath model), the tutorial's curl to it.
Simulated: the model is a tiny random-weight SDXL pipeline (the PNG is noise), the g8i node is
this VM with the g8i label (no AMX guarantee, no TDX), the apiserver reaches pods through a TCP
forwarder instead of kube-proxy, and the OSS CSI driver is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hack" / "cluster"))
sys.path.insert(0, str(ROOT / "tests" / "realnode"))
import localcluster  # noqa: E402
import overlay  # noqa: E402
import realnode  # noqa: E402
from rn_helpers import TUTORIAL_BODY, get_bytes, post_json, ready_pods, real_t2i  # noqa: E402


def step(msg: str) -> None:
    print(f"\n\033[1m== {msg}\033[0m", flush=True)


def wait(pred, what: str, timeout: float = 600):
    return localcluster.wait_for(pred, timeout, what, interval=1)


def main() -> int:
    if os.geteuid() != 0:
        print("make demo REAL=1 needs root (containerd, kubelet, buildah)", file=sys.stderr)
        return 2
    out = Path(os.environ.get("T2I_DEMO_OUT", ROOT / "demo-output"))
    out.mkdir(parents=True, exist_ok=True)
    step("Images, built without Docker (mmdebstrap base + buildah; cached)")
    images = json.loads(
        subprocess.run(
            ["bash", str(ROOT / "hack" / "images.sh")], check=True, stdout=subprocess.PIPE
        ).stdout.splitlines()[-1]
    )
    print(json.dumps(images, indent=1))
    state = Path(tempfile.mkdtemp(prefix="t2i-demo-real-"))
    cluster = localcluster.LocalCluster(state, real_node=True)
    try:
        step("Control plane + kwok nodes + a REAL kubelet node (containerd, runc, CNI bridge)")
        cluster.up()
        node = cluster.node
        for key in ("server", "operator"):
            node.load_image(Path(images[f"{key}_archive"]), images[key])
        kubectl = [str(cluster.kubectl), "--kubeconfig", str(cluster.kubeconfig)]
        subprocess.run([*kubectl, "get", "nodes", "-o", "wide"], check=True)

        step("Operator: kubectl apply -k (deploy/ + the image built here), in a pod")
        d = overlay.write_operator_overlay(
            state / "overlay",
            images["operator"],
            node.gateway,
            node.api_port,
            node.name,
            realnode.TAINT_KEY,
        )
        subprocess.run([*kubectl, "apply", "-k", str(d)], check=True)
        subprocess.run(
            [
                *kubectl,
                "-n",
                "t2i-system",
                "rollout",
                "status",
                "deploy/t2i-operator",
                "--timeout=300s",
            ],
            check=True,
        )

        step("Text2ImageService: tiny model on a HostPath, placed on the real node")
        models = state / "models"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "inference_server.tiny_model",
                str(models / "stabilityai" / "sdxl-turbo"),
            ],
            check=True,
            capture_output=True,
        )
        for p in [models, *models.rglob("*")]:
            p.chmod(p.stat().st_mode | (0o755 if p.is_dir() else 0o644))
        cr = real_t2i("stable-diffusion-ipex", "default", images["server"], models)
        subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(cr), text=True, check=True)
        t0 = time.monotonic()
        subprocess.run(
            [
                *kubectl,
                "wait",
                "--for=condition=Ready",
                "t2i/stable-diffusion-ipex",
                "--timeout=600s",
            ],
            check=True,
        )
        print(f"Ready after {time.monotonic() - t0:.0f} s")
        subprocess.run([*kubectl, "get", "t2i,deploy,pods", "-o", "wide"], check=True)

        class K:  # the tiny part of tests' Kubectl that ready_pods uses
            @staticmethod
            def items(kind, ns, selector):
                r = subprocess.run(
                    [*kubectl, "get", kind, "-n", ns, "-l", selector, "-o", "json"],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                return json.loads(r.stdout)["items"]

        (pod,) = wait(lambda: ready_pods(K, "default", "stable-diffusion-ipex"), "a Ready pod")
        ip = pod["status"]["podIP"]
        step(f"The tutorial's request, to the pod IP {ip}")
        print(f"curl -X POST http://{ip}:5000/api/text2image -d '{json.dumps(TUTORIAL_BODY)}'")
        _, body = post_json(f"http://{ip}:5000/api/text2image", TUTORIAL_BODY)
        print(json.dumps(body, indent=1))
        (out / "panda-real.png").write_bytes(get_bytes(body["output"][0]["url"]))
        print(f"saved {out / 'panda-real.png'}")
        print(__doc__.split("\n\n", 1)[1])
        return 0
    finally:
        step("Tearing down (pods, kubelet, containerd, control plane; nothing left behind)")
        cluster.down()
        left = cluster.node.leftovers() if cluster.node else []
        print(f"left behind: {left or 'nothing'}; logs in {state}")


if __name__ == "__main__":
    sys.exit(main())
