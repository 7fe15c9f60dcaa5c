"""Issue 21 on a real pod: a TDX service with spec.placement.tdxEvidence.configfsTsm gets the
node's configfs-tsm report directory mounted, runs as uid 0 without capabilities, and answers the
operator's nonce with a quote bound to it: Attested=True, asked by the operator's own pod.

This node is not a TD. Its configfs-tsm is the ABI-following stand-in of
tests/server/tsm_fixture.py (entries populated on mkdir, `outblob` a FIFO the quote is written
to), on the host at the operator's --configfs-tsm-host-path, bind-mounted into the container by
the kubelet exactly as the real directory would be."""

from __future__ import annotations

import sys
from pathlib import Path

import realnode
from operator_harness import condition
from rn_helpers import real_t2i, tsm_host_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from tsm_fixture import ConfigfsTsm


def test_a_tdx_service_with_configfs_tsm_is_attested_from_its_real_pod(
    real_cluster, operator_pod, images, kube, model_dir, namespace
):
    root = tsm_host_dir(real_cluster)
    root.mkdir(parents=True, exist_ok=True)
    placement = {
        "pool": "TDX",
        "tdxNodeLabel": {"key": "kubernetes.io/hostname", "value": realnode.NODE_NAME},
        "tdxEvidence": {"configfsTsm": True},
    }
    body = real_t2i("att", namespace, images["server"], model_dir, placement=placement)
    body["spec"].pop("nodeSelector")  # the pool's label rule pins it to the node instead
    with ConfigfsTsm(root, poll_seconds=0.01) as tsm:
        kube.apply(body)
        kube.wait_ready("att", namespace, timeout=420)
        cr = kube.wait_condition("att", namespace, "Attested", status="True", timeout=120)
        assert "tdx_guest" in condition(cr, "Attested")["message"]
        assert tsm.quotes, "the pod never wrote report data to the node's configfs-tsm"
        # every quote the pod asked for carried 64 bytes of report data (nonce + digests)
        assert all(len(q) == 64 for q in tsm.quotes)
    (pod,) = kube.items("pods", namespace, "app.kubernetes.io/instance=att")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["configfs-tsm"]["hostPath"]["path"] == str(root)
    context = pod["spec"]["containers"][0]["securityContext"]
    assert context["runAsUser"] == 0 and context["capabilities"] == {"drop": ["ALL"]}
