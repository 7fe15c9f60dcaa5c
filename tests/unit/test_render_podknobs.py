"""Pod-level knobs (issue 18 item 2): spec.pod / spec.container rendered onto the pod template,
the operator's own names winning, and CR labels propagated by the documented rule."""

from pathlib import Path

import pytest
import yaml
from t2i_operator import spec as spec_mod
from t2i_operator.reconcile import checked_spec, owner_of
from t2i_operator.render import Owner, render_all
from t2i_operator.render.common import NOT_PROPAGATED_PREFIXES
from t2i_operator.render.deployment import operator_env_names
from tutorial import by_kind

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "t2i.dev_text2imageservices.yaml").read_text())
SPEC_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
OWNER = Owner("sd", "tenant", "uid-1")
SELECTOR = {"app.kubernetes.io/name": "t2i-server", "app.kubernetes.io/instance": "sd"}


def render(raw: dict, owner: Owner = OWNER) -> dict:
    spec, problem = checked_spec(raw)
    assert problem is None, problem
    return by_kind(render_all(spec, owner))


def pod_of(kinds: dict) -> dict:
    return kinds["Deployment"]["spec"]["template"]["spec"]


def container_of(kinds: dict) -> dict:
    return pod_of(kinds)["containers"][0]


def env_of(kinds: dict) -> dict:
    return {e["name"]: e for e in container_of(kinds).get("env", [])}


def problem_of(raw: dict) -> str:
    spec, problem = checked_spec(raw)
    assert spec is None and problem is not None and problem.reason == "InvalidSpec"
    return problem.message


def test_no_knobs_render_the_same_pod_as_before():
    pod = pod_of(render({}))
    for key in ("serviceAccountName", "priorityClassName", "runtimeClassName"):
        assert key not in pod
    assert "topologySpreadConstraints" not in pod
    assert [v["name"] for v in pod["volumes"]] == ["output-volume"]
    assert list(env_of(render({}))) == ["OMP_NUM_THREADS"]


def test_pod_fields_reach_the_pod_spec():
    kinds = render(
        {
            "pod": {
                "serviceAccountName": "t2i-rrsa",
                "priorityClassName": "inference-high",
                "runtimeClassName": "runc-sandbox",
                "annotations": {"example.com/team": "vision"},
                "labels": {"team": "vision"},
            }
        }
    )
    pod = pod_of(kinds)
    assert pod["serviceAccountName"] == "t2i-rrsa"
    assert pod["priorityClassName"] == "inference-high"
    assert pod["runtimeClassName"] == "runc-sandbox"
    assert pod["automountServiceAccountToken"] is False  # unchanged: the server never calls the API
    meta = kinds["Deployment"]["spec"]["template"]["metadata"]
    assert meta["annotations"] == {"example.com/team": "vision"}
    assert meta["labels"]["team"] == "vision"
    # pod labels are on the template only, not on the Deployment or the Service
    assert "team" not in kinds["Deployment"]["metadata"]["labels"]
    assert "team" not in kinds["Service"]["metadata"]["labels"]


def test_extra_env_follows_the_operators_and_keeps_value_from():
    env = [
        {"name": "T2I_LOG_PROMPTS", "value": "true"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    kinds = render({"container": {"env": env}})
    names = [e["name"] for e in container_of(kinds)["env"]]
    assert names == ["OMP_NUM_THREADS", "T2I_LOG_PROMPTS", "POD_IP", "TOKEN"]
    assert env_of(kinds)["TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "s", "key": "k"}


@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "T2I_PORT", "T2I_MAX_BATCH"])
def test_operator_env_names_are_refused_without_the_override_flag(name):
    message = problem_of({"container": {"env": [{"name": name, "value": "3"}]}})
    assert "spec.container.env[0].name" in message and name in message
    assert "allowOperatorEnvOverride" in message


def test_override_flag_replaces_the_operators_value_and_drops_its_flag():
    kinds = render(
        {
            "container": {
                "allowOperatorEnvOverride": True,
                "env": [
                    {"name": "OMP_NUM_THREADS", "value": "7"},
                    {"name": "T2I_MAX_BATCH", "value": "2"},
                ],
            }
        }
    )
    c = container_of(kinds)
    assert [e for e in c["env"] if e["name"] == "OMP_NUM_THREADS"] == [
        {"name": "OMP_NUM_THREADS", "value": "7"}
    ]
    assert "--max-batch" not in c["args"]  # the variable takes effect: flags win over env
    assert "--default-steps" in c["args"]  # the others stay


def test_crd_cel_list_equals_the_names_the_renderer_owns():
    rule = next(
        r["rule"]
        for r in SPEC_SCHEMA["x-kubernetes-validations"]
        if "allowOperatorEnvOverride" in r["rule"]
    )
    listed = sorted(part.strip(" '\n") for part in rule.split("[", 1)[1].split("]")[0].split(","))
    assert listed == operator_env_names()
    assert "T2I_PORT" in listed and "OMP_NUM_THREADS" in listed


def test_extra_volumes_and_mounts_are_appended():
    kinds = render(
        {
            "pod": {"volumes": [{"name": "cfg", "configMap": {"name": "t2i-cfg"}}]},
            "container": {"volumeMounts": [{"name": "cfg", "mountPath": "/etc/t2i"}]},
        }
    )
    pod = pod_of(kinds)
    assert [v["name"] for v in pod["volumes"]] == ["output-volume", "cfg"]
    assert pod["volumes"][1]["configMap"] == {"name": "t2i-cfg"}
    mounts = container_of(kinds)["volumeMounts"]
    assert mounts[0]["name"] == "output-volume" and mounts[-1] == {
        "name": "cfg",
        "mountPath": "/etc/t2i",
    }


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"pod": {"volumes": [{"name": "output-volume", "emptyDir": {}}]}}, "spec.pod.volumes[0]"),
        ({"pod": {"volumes": [{"name": "data-volume", "emptyDir": {}}]}}, "spec.pod.volumes[0]"),
        (
            {"container": {"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}},
            "spec.container.volumeMounts[0].name",
        ),
        (
            {
                "pod": {"volumes": [{"name": "v", "emptyDir": {}}]},
                "container": {"volumeMounts": [{"name": "v", "mountPath": "/tmp/sd/sub"}]},
            },
            "spec.outputDirPath",
        ),
        (
            {
                "pod": {"volumes": [{"name": "v", "emptyDir": {}}]},
                "container": {"volumeMounts": [{"name": "v", "mountPath": "/models"}]},
            },
            "spec.model.mountPath",
        ),
        (
            {
                "pod": {"volumes": [{"name": "v", "emptyDir": {}}]},
                "container": {"volumeMounts": [{"name": "v", "mountPath": "/tmp"}]},
            },
            "spec.outputDirPath",
        ),
        ({"pod": {"labels": {"app.kubernetes.io/instance": "x"}}}, "spec.pod.labels"),
    ],
)
def test_clashes_with_the_operators_own_are_named_problems(raw, field):
    assert field in problem_of(raw)


def test_a_mount_path_beside_the_operators_is_fine():
    kinds = render(
        {
            "pod": {"volumes": [{"name": "v", "emptyDir": {}}]},
            "container": {"volumeMounts": [{"name": "v", "mountPath": "/tmp/sdx"}]},
        }
    )
    assert container_of(kinds)["volumeMounts"][-1]["mountPath"] == "/tmp/sdx"


def test_topology_spread_defaults_its_selector_to_the_services_pods():
    own = {"topologyKey": "kubernetes.io/hostname", "maxSkew": 2}
    other = {"topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    pod = pod_of(render({"pod": {"topologySpreadConstraints": [own, other]}}))
    spread = pod["topologySpreadConstraints"]
    assert spread[0] == {
        **own,
        "whenUnsatisfiable": "DoNotSchedule",  # required by the API: defaulted
        "labelSelector": {"matchLabels": SELECTOR},
    }
    assert spread[1] == {**other, "maxSkew": 1, "labelSelector": {"matchLabels": SELECTOR}}


def test_probe_timing_overrides_keep_paths_and_other_fields():
    kinds = render(
        {
            "container": {
                "probes": {
                    "startup": {"failureThreshold": 360},
                    "readiness": {"periodSeconds": 2, "timeoutSeconds": 1},
                    "liveness": {"initialDelaySeconds": 30},
                }
            }
        }
    )
    c = container_of(kinds)
    assert c["startupProbe"]["failureThreshold"] == 360
    assert c["startupProbe"]["periodSeconds"] == 5  # the operator's
    assert c["readinessProbe"]["periodSeconds"] == 2 and c["readinessProbe"]["timeoutSeconds"] == 1
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["initialDelaySeconds"] == 30
    assert c["livenessProbe"]["periodSeconds"] == 10


def cr(labels: dict) -> dict:
    return {"metadata": {"name": "sd", "namespace": "tenant", "uid": "uid-1", "labels": labels}}


def test_cr_labels_reach_every_child_except_tool_prefixes_and_operator_keys():
    labels = {
        "team": "vision",
        "cost-center": "42",
        "kubectl.kubernetes.io/last-applied": "x",
        "argocd.argoproj.io/instance": "app",
        "kustomize.toolkit.fluxcd.io/name": "k",
        "app.kubernetes.io/instance": "someone-else",  # Argo CD's legacy tracking label
        "app.kubernetes.io/managed-by": "Helm",
    }
    owner = owner_of(cr(labels))
    kinds = render(
        {"replicas": 2, "autoscaling": {"enabled": True, "minReplicas": 2}, "pod": {"labels": {}}},
        owner,
    )
    assert sorted(kinds) == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ]
    template = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for obj in [*kinds.values(), {"metadata": {"labels": template}}]:
        got = obj["metadata"]["labels"]
        assert got["team"] == "vision" and got["cost-center"] == "42"
        assert got["app.kubernetes.io/instance"] == "sd"
        assert got["app.kubernetes.io/managed-by"] == "t2i-operator"
        assert not any(k.startswith(NOT_PROPAGATED_PREFIXES) for k in got)
    # the selector is never widened by propagated labels
    assert kinds["Deployment"]["spec"]["selector"] == {"matchLabels": SELECTOR}
    assert kinds["Service"]["spec"]["selector"] == SELECTOR


def test_pod_labels_win_over_cr_labels_on_the_template_only():
    owner = owner_of(cr({"team": "from-cr"}))
    kinds = render({"pod": {"labels": {"team": "from-pod"}}}, owner)
    assert kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]["team"] == "from-pod"
    assert kinds["Deployment"]["metadata"]["labels"]["team"] == "from-cr"


def test_parse_keeps_unset_knobs_empty():
    parsed = spec_mod.parse({"container": {"probes": {"readiness": {"periodSeconds": 3}}}})
    assert parsed.container.probes.readiness.periodSeconds == 3
    assert parsed.container.probes.liveness == spec_mod.ProbeTiming()
    assert parsed.pod == spec_mod.Pod()
