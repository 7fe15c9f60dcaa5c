"""Issue 21: a TDX service can opt in to the node's configfs-tsm, the one way its pods can make
TD quotes. Off by default (no host mount, the non-root default stays)."""

from __future__ import annotations

import pytest
from t2i_operator import spec as spec_mod
from t2i_operator.render import deployment as deployment_mod
from t2i_operator.render import render_all
from t2i_operator.render.deployment import TSM_HOST_PATH, TSM_MOUNT_PATH, TSM_VOLUME
from t2i_operator.validate import SpecError, check
from tutorial import OWNER, by_kind

from inference_server import cli

TDX = {"pool": "TDX"}
EVIDENCE = {"pool": "TDX", "tdxEvidence": {"configfsTsm": True}}


def pod_spec(placement: dict) -> dict:
    parsed = spec_mod.parse({"placement": placement})
    check(parsed)
    return by_kind(render_all(parsed, OWNER))["Deployment"]["spec"]["template"]["spec"]


def test_a_tdx_service_mounts_nothing_of_the_node_and_stays_non_root_by_default():
    pod = pod_spec(TDX)
    assert TSM_VOLUME not in {v["name"] for v in pod["volumes"]}
    assert "--tsm-report-root" not in pod["containers"][0]["args"]
    context = pod["containers"][0]["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 1000


def test_opting_in_mounts_configfs_tsm_where_the_server_looks_and_runs_as_uid_0_only():
    pod = pod_spec(EVIDENCE)
    (volume,) = [v for v in pod["volumes"] if v["name"] == TSM_VOLUME]
    assert volume["hostPath"] == {"path": "/sys/kernel/config/tsm/report", "type": "Directory"}
    container = pod["containers"][0]
    assert {"name": TSM_VOLUME, "mountPath": TSM_MOUNT_PATH} in container["volumeMounts"]
    context = container["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["runAsNonRoot"]) == (0, 0, False)
    # root without capabilities: no privilege beyond the owner's write on that directory
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["allowPrivilegeEscalation"] is False
    # the server is told where the pod sees it, and its parser takes that
    args = container["args"]
    assert args[args.index("--tsm-report-root") + 1] == TSM_MOUNT_PATH
    assert cli.parse_args(args).tsm_report_root == TSM_MOUNT_PATH


def test_the_node_side_path_is_the_operators_setting_not_the_specs():
    deployment_mod.set_configfs_tsm_host_path("/run/tsm-report")
    try:
        pod = pod_spec(EVIDENCE)
    finally:
        deployment_mod.set_configfs_tsm_host_path(TSM_HOST_PATH)
    (volume,) = [v for v in pod["volumes"] if v["name"] == TSM_VOLUME]
    assert volume["hostPath"]["path"] == "/run/tsm-report"
    mount = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == TSM_VOLUME]
    assert mount == [{"name": TSM_VOLUME, "mountPath": TSM_MOUNT_PATH}]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (
            {"placement": {"pool": "G8i", "tdxEvidence": {"configfsTsm": True}}},
            "spec.placement.tdxEvidence.configfsTsm",
        ),
        (
            {"placement": EVIDENCE, "pod": {"volumes": [{"name": TSM_VOLUME, "emptyDir": {}}]}},
            "spec.pod.volumes[0].name",
        ),
    ],
    ids=["not-a-tdx-pool", "volume-name-taken"],
)
def test_what_the_renderer_cannot_honour_is_refused_naming_the_field(raw, field):
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        check(spec_mod.parse(raw))
