"""Rendering the tutorial's three configurations: every field the tutorial shows."""

import base64
import json
import re

import pytest
from t2i_operator import spec
from t2i_operator.render import render_all
from t2i_operator.render.deployment import effective_threads
from tutorial import (
    CREDENTIALS,
    DEFAULT_VALUES,
    OSS_SPEC,
    OWNER,
    TDX_SPEC,
    TDX_VALUES_LITERAL,
    by_kind,
    load,
)

LABELS = {
    "app.kubernetes.io/name": "t2i-server",
    "app.kubernetes.io/instance": "stable-diffusion-ipex",
    "app.kubernetes.io/managed-by": "t2i-operator",
}


def render(text: str, **extra):
    raw = load(text)
    raw.update(extra)
    return by_kind(render_all(spec.parse(raw), OWNER, CREDENTIALS))


def container(kinds):
    return kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def arg(c, flag):
    return c["args"][c["args"].index(flag) + 1]


def required_terms(pod):
    na = pod["affinity"]["nodeAffinity"]
    return na["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]


def test_default_values_render_deployment_and_service_only():
    kinds = render(DEFAULT_VALUES)
    assert sorted(kinds) == ["Deployment", "Service"]
    dep = kinds["Deployment"]
    assert dep["metadata"]["name"] == "stable-diffusion-ipex"
    assert dep["metadata"]["labels"] == LABELS
    ref = dep["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("Text2ImageService", "0000-uid", True)
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    pod = dep["spec"]["template"]["spec"]
    # No API token, and no service-link variables (a Service "t2i" would inject T2I_PORT).
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert dep["spec"]["template"]["metadata"]["labels"] == LABELS
    assert dep["spec"]["selector"]["matchLabels"].items() <= LABELS.items()
    c = container(kinds)
    assert c["image"] == "ghcr.io/t2i-operator/t2i-server:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["resources"] == {
        "limits": {"cpu": "16", "memory": "32Gi"},
        "requests": {"cpu": "14", "memory": "24Gi"},
    }
    assert c["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]
    assert arg(c, "--model-dir") == "/models/stabilityai/sdxl-turbo"
    assert arg(c, "--model-name") == "stabilityai/sdxl-turbo"
    assert arg(c, "--port") == "5000"
    assert arg(c, "--output-dir") == "/tmp/sd"
    assert arg(c, "--default-steps") == "4"
    assert arg(c, "--max-batch") == "4"
    assert arg(c, "--backend") == "auto"
    assert arg(c, "--threads") == "16"  # derived from the CPU limit
    sc = c["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert (sc["runAsNonRoot"], sc["runAsUser"], sc["allowPrivilegeEscalation"]) == (
        True,
        1000,
        False,
    )
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"  # start-up errors → status
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # the tutorial's 10 min
    assert dep["spec"]["progressDeadlineSeconds"] > (
        startup["periodSeconds"] * startup["failureThreshold"]
    )
    # outputDirPath is an emptyDir; no model volume (bundled in the image)
    assert pod["volumes"] == [{"name": "output-volume", "emptyDir": {}}]
    assert c["volumeMounts"] == [{"name": "output-volume", "mountPath": "/tmp/sd"}]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert "imagePullSecrets" not in pod
    # G8i pool by default: g8i types, and not the TDX pool
    (term,) = required_terms(pod)
    exprs = {e["key"]: e for e in term["matchExpressions"]}
    assert exprs["node.kubernetes.io/instance-type"]["operator"] == "In"
    assert "ecs.g8i.8xlarge" in exprs["node.kubernetes.io/instance-type"]["values"]
    assert exprs["nodepool-label"] == {
        "key": "nodepool-label",
        "operator": "NotIn",
        "values": ["tdx-vm-pool"],
    }
    svc = kinds["Service"]["spec"]
    assert svc["type"] == "ClusterIP"
    assert svc["ports"] == [{"name": "http", "port": 5000, "targetPort": "http", "protocol": "TCP"}]
    assert svc["selector"] == dep["spec"]["selector"]["matchLabels"]


def test_oss_custom_model_renders_the_tutorials_secret_pv_pvc():
    kinds = render(OSS_SPEC)
    assert list(kinds) == [
        "Secret",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
    ]
    secret = kinds["Secret"]
    assert secret["metadata"]["name"] == "stable-diffusion-ipex-oss-credentials"
    assert secret["metadata"]["namespace"] == "default"
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "akId": CREDENTIALS.access_key_id,
        "akSecret": CREDENTIALS.access_key_secret,
    }

    pv = kinds["PersistentVolume"]
    pv_name = pv["metadata"]["name"]
    assert re.fullmatch(r"default-stable-diffusion-ipex-models-[0-9a-f]{8}", pv_name)
    assert "namespace" not in pv["metadata"]
    assert "ownerReferences" not in pv["metadata"]  # cluster-scoped: finalizer, not GC
    assert pv["metadata"]["labels"]["alicloud-pvname"] == pv_name
    assert pv["metadata"]["labels"]["t2i.dev/owner"] == "default.stable-diffusion-ipex"
    s = pv["spec"]
    assert s["capacity"] == {"storage": "50Gi"}
    assert s["accessModes"] == ["ReadOnlyMany"]
    assert s["persistentVolumeReclaimPolicy"] == "Retain"
    assert s["csi"]["driver"] == "ossplugin.csi.alibabacloud.com"
    assert s["csi"]["volumeHandle"] == pv_name
    assert s["csi"]["nodePublishSecretRef"] == {
        "name": "stable-diffusion-ipex-oss-credentials",
        "namespace": "default",
    }
    assert s["csi"]["volumeAttributes"] == {
        "bucket": "<your-bucket-name>",
        "url": "oss-cn-beijing-internal.aliyuncs.com",
        "otherOpts": "-o umask=022 -o max_stat_cache_size=0 -o allow_other",
        "path": "/models",
    }

    pvc = kinds["PersistentVolumeClaim"]
    claim = pvc["metadata"]["name"]
    assert claim == "stable-diffusion-ipex-models-" + pv_name.rsplit("-", 1)[1]
    assert pvc["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert pvc["spec"]["resources"] == {"requests": {"storage": "50Gi"}}
    assert pvc["spec"]["selector"] == {"matchLabels": {"alicloud-pvname": pv_name}}

    c = container(kinds)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert c["image"].endswith(":0.1.0-lite")  # useCustomModels → tagOnlyApi
    assert {"name": "data-volume", "mountPath": "/models", "readOnly": True} in c["volumeMounts"]
    assert {
        "name": "data-volume",
        "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
    } in pod["volumes"]
    assert arg(c, "--model-dir") == "/models/stabilityai/sdxl-turbo"


def test_existing_pvc_and_hostpath_sources():
    kinds = render("", model={"source": "PVC", "pvc": {"claimName": "models-oss-pvc"}})
    assert sorted(kinds) == ["Deployment", "Service"]
    vols = kinds["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert vols[1]["persistentVolumeClaim"]["claimName"] == "models-oss-pvc"
    kinds = render(
        "",
        model={
            "source": "HostPath",
            "mountPath": "/data/models",
            "hostPath": {"path": "/data/models"},
        },
    )
    vols = kinds["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert vols[1]["hostPath"] == {"path": "/data/models", "type": "DirectoryOrCreate"}
    assert arg(container(kinds), "--model-dir") == "/data/models/stabilityai/sdxl-turbo"


def test_tdx_pool_is_a_required_node_affinity():
    pod = render(TDX_SPEC)["Deployment"]["spec"]["template"]["spec"]
    (term,) = required_terms(pod)
    assert term["matchExpressions"] == [
        {"key": "nodepool-label", "operator": "In", "values": ["tdx-vm-pool"]}
    ]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in pod["affinity"]["nodeAffinity"]


def test_tdx_values_literal_nodeselector_passes_through():
    pod = render(TDX_VALUES_LITERAL)["Deployment"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nodepool-label": "tdx-vm-pool"}
    assert "affinity" not in pod  # pool Any adds no rule


def test_custom_tdx_label_and_user_affinity_are_merged():
    user_affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                ]
            }
        },
        "podAntiAffinity": {"x": 1},
    }
    raw = {
        "placement": {"pool": "TDX", "tdxNodeLabel": {"key": "confidential", "value": "yes"}},
        "affinity": user_affinity,
        "tolerations": [{"key": "tdx", "operator": "Exists", "effect": "NoSchedule"}],
    }
    pod = by_kind(render_all(spec.parse(raw), OWNER))["Deployment"]["spec"]["template"]["spec"]
    terms = required_terms(pod)
    assert len(terms) == 2  # the user's alternatives survive, each ANDed with the pool
    for term, zone in zip(terms, ["a", "b"], strict=True):
        assert term["matchExpressions"] == [
            {"key": "zone", "operator": "In", "values": [zone]},
            {"key": "confidential", "operator": "In", "values": ["yes"]},
        ]
    assert pod["affinity"]["podAntiAffinity"] == {"x": 1}
    assert pod["tolerations"] == [{"key": "tdx", "operator": "Exists", "effect": "NoSchedule"}]
    # the input spec's affinity is not modified by merging
    assert (
        len(
            raw["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"
            ][0]["matchExpressions"]
        )
        == 1
    )


def test_autoscaling_renders_hpa_and_leaves_replicas_to_it():
    kinds = render("", autoscaling={"enabled": True}, replicas=5)
    assert "replicas" not in kinds["Deployment"]["spec"]
    hpa = kinds["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "stable-diffusion-ipex",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    targets = {
        m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
        for m in hpa["spec"]["metrics"]
    }
    assert targets == {"cpu": 80, "memory": 90}


def test_image_pull_secrets_and_server_settings():
    kinds = render(
        "",
        image={"pullSecrets": [{"name": "regcred"}], "tag": "v9"},
        server={"steps": 2, "maxBatch": 16, "backend": "ipex", "threads": 7},
    )
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    c = container(kinds)
    assert c["image"].endswith(":v9")
    assert (arg(c, "--default-steps"), arg(c, "--max-batch"), arg(c, "--backend")) == (
        "2",
        "16",
        "ipex",
    )
    assert arg(c, "--threads") == "7"


@pytest.mark.parametrize(("server", "flag"), [({}, "true"), ({"ui": False}, "false")])
def test_the_playground_follows_spec_server_ui(server, flag):
    assert arg(container(render("", server=server)), "--ui") == flag


@pytest.mark.parametrize(
    ("limit", "threads"),
    [("16", 16), ("15500m", 15), ("500m", 1), (32, 32), ("2.5", 2)],
)
def test_threads_follow_the_cpu_limit(limit, threads):
    s = spec.parse({"resources": {"limits": {"cpu": limit}}})
    assert effective_threads(s) == threads


def test_secret_values_appear_only_in_the_owned_secret():
    manifests = render_all(spec.parse(load(OSS_SPEC)), OWNER, CREDENTIALS)
    for m in manifests:
        text = json.dumps(m)
        encoded = [base64.b64encode(v.encode()).decode() for v in vars(CREDENTIALS).values()]
        for value in [*vars(CREDENTIALS).values(), *encoded]:
            if m["kind"] == "Secret":
                continue
            assert value not in text, m["kind"]
    assert "s3cr3t" not in repr(CREDENTIALS)


def _volume_names(kinds) -> tuple[str, str, str]:
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (claim,) = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    return (
        kinds["PersistentVolume"]["metadata"]["name"],
        kinds["PersistentVolumeClaim"]["metadata"]["name"],
        claim,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"bucket": "other"},
        {"endpoint": "oss-cn-hangzhou.aliyuncs.com"},
        {"path": "/m2"},
        {"otherOpts": "-o ro"},
        {"capacity": "80Gi"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_an_oss_source_change_names_a_new_volume_pair_and_the_pods_follow(change):
    """Item 11: a PV's CSI source and a static claim are immutable, so a changed source is a
    new pair (the Deployment rolls over to it; the old pair is pruned)."""
    before = render(OSS_SPEC)
    raw = load(OSS_SPEC)
    raw["model"]["oss"].update(change)
    after = by_kind(render_all(spec.parse(raw), OWNER, CREDENTIALS))
    pv, pvc, claim = _volume_names(after)
    assert claim == pvc
    assert set(_volume_names(before)).isdisjoint({pv, pvc})
    unrelated = render(OSS_SPEC, replicas=3)
    assert _volume_names(unrelated) == _volume_names(before)


def test_oss_without_credentials_refuses_to_render():
    with pytest.raises(ValueError, match="credentials"):
        render_all(spec.parse(load(OSS_SPEC)), OWNER, None)


def test_owner_label_fits_the_label_value_limit():
    from t2i_operator.render import Owner

    long = Owner(name="n" * 60, namespace="ns" * 20, uid="u")
    assert len(long.owner_label) <= 63
    assert long.owner_label != Owner(name="n" * 59, namespace="ns" * 20, uid="u").owner_label


def test_recreate_strategy_sends_no_rolling_update():
    dep = render("", strategy={"type": "Recreate"})["Deployment"]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    custom = render("", strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0}})
    assert custom["Deployment"]["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0}
