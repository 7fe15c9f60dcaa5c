"""A kustomize overlay over deploy/ that installs the operator on the local real node.

Three changes to what a user applies, each forced by this machine and nothing else (plus the
operator flags a test asks for, appended to deploy/'s own):
  * the image: the one hack/images.sh built here (a `kustomize edit set image`);
  * KUBERNETES_SERVICE_HOST/PORT: the apiserver as the node's pods reach it (the bridge gateway
    forwarder; a real cluster's kube-proxy does this for the `kubernetes` Service);
  * a toleration + nodeSelector for the real node (its taint keeps the e2e kwok tests off it).
The manifests, RBAC, securityContext and probes are deploy/'s own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_IMAGE = "ghcr.io/t2i-operator/t2i-operator"


def write_operator_overlay(
    d: Path,
    image_ref: str,
    api_host: str,
    api_port: int,
    node: str,
    taint_key: str,
    extra_args: tuple[str, ...] = (),
) -> Path:
    """Write <d>/kustomization.yaml (JSON is valid YAML); returns d for `kubectl apply -k`.
    `extra_args` are appended to the operator's own (a JSON 6902 patch: deploy/'s stay)."""
    d.mkdir(parents=True, exist_ok=True)
    name, tag = image_ref.rsplit(":", 1)
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "t2i-operator", "namespace": "t2i-system"},
        "spec": {
            "template": {
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": [{"key": taint_key, "operator": "Exists"}],
                    "containers": [
                        {
                            "name": "operator",
                            "env": [
                                {"name": "KUBERNETES_SERVICE_HOST", "value": api_host},
                                {"name": "KUBERNETES_SERVICE_PORT", "value": str(api_port)},
                            ],
                        }
                    ],
                }
            }
        },
    }
    (d / "real-node-patch.yaml").write_text(json.dumps(patch, indent=1))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / "deploy", d)],
        "images": [{"name": OPERATOR_IMAGE, "newName": name, "newTag": tag}],
        "patches": [
            {"path": "real-node-patch.yaml"},
            *(
                [
                    {
                        "target": {"kind": "Deployment", "name": "t2i-operator"},
                        "patch": json.dumps(
                            [
                                {
                                    "op": "add",
                                    "path": "/spec/template/spec/containers/0/args/-",
                                    "value": a,
                                }
                                for a in extra_args
                            ]
                        ),
                    }
                ]
                if extra_args
                else []
            ),
        ],
    }
    (d / "kustomization.yaml").write_text(json.dumps(kustomization, indent=1))
    return d
