"""The CRD and the install manifests, checked against the spec model without a cluster."""

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml
from t2i_operator import spec as spec_mod

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "t2i.dev_text2imageservices.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
# spec.py field → schema path, where the typed model flattens the YAML shape.
ALIASES = {
    "model.pvcClaimName": "model.pvc.claimName",
    "imageStorage.pvcClaimName": "imageStorage.pvc.claimName",
}
# Free-form pass-through objects: only their top level is declared.
PASSTHROUGH = {"resources", "strategy", "affinity", "securityContext", "tolerations"}
# Arrays the model keeps as a tuple of their items (typed by the schema, passed through as-is).
ITEM_ARRAYS = {
    "image.pullSecrets",
    "container.env",
    "container.volumeMounts",
    "pod.volumes",
    "pod.topologySpreadConstraints",
}


def model_paths(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = ALIASES.get(prefix + f.name, prefix + f.name)
        yield path
        inner = [a for a in typing.get_args(hints[f.name]) if dataclasses.is_dataclass(a)]
        target = (
            hints[f.name] if dataclasses.is_dataclass(hints[f.name]) else next(iter(inner), None)
        )
        if target is not None:
            yield from model_paths(target, path + ".")


def schema_paths(node, prefix=""):
    for name, sub in (node.get("properties") or {}).items():
        path = prefix + name
        yield path
        if path.split(".")[0] in PASSTHROUGH:
            continue
        if sub.get("type") == "array":
            if path not in ITEM_ARRAYS:
                yield from schema_paths(sub.get("items") or {}, path + ".")
        else:
            yield from schema_paths(sub, path + ".")


def test_every_spec_field_is_in_the_schema_and_vice_versa():
    model = set(model_paths(spec_mod.Spec))
    schema = set(schema_paths(SCHEMA["properties"]["spec"]))
    schema -= {
        "model.pvc",
        "imageStorage.pvc",
        "strategy.type",
        "resources.requests",
        "resources.limits",
    }
    assert model - schema == set(), "in spec.py but not in the CRD"
    assert schema - model == set(), "in the CRD but not in spec.py"


def all_nodes(node, path="spec"):
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from all_nodes(sub, f"{path}.{name}")
    if "items" in node:
        yield from all_nodes(node["items"], f"{path}[]")


@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_field_has_a_description(part):
    missing = [
        p for p, n in all_nodes(SCHEMA["properties"][part], part) if not n.get("description")
    ]
    assert missing == []


def test_only_replicas_is_defaulted_in_the_schema():
    # Defaults in the schema are written into stored objects; spec.py owns them, except
    # spec.replicas: the scale subresource (kubectl scale, an HPA or KEDA on the CR) reads it
    # from the stored object and fails when it is absent (issue 16 item 9).
    defaulted = {
        p: n["default"] for p, n in all_nodes(SCHEMA["properties"]["spec"]) if "default" in n
    }
    assert defaulted == {"spec": {}, "spec.replicas": 1}
    assert spec_mod.Spec().replicas == 1


def test_enums_match_the_spec_model():
    props = SCHEMA["properties"]["spec"]["properties"]
    assert tuple(props["model"]["properties"]["source"]["enum"]) == spec_mod.SOURCES
    assert tuple(props["placement"]["properties"]["pool"]["enum"]) == spec_mod.POOLS
    assert tuple(props["server"]["properties"]["backend"]["enum"]) == spec_mod.BACKENDS


def test_subresources_printer_columns_and_conditions():
    assert CRD["spec"]["names"]["shortNames"] == ["t2i"]
    scale = VERSION["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert "status" in VERSION["subresources"]
    shown = [c["name"] for c in VERSION["additionalPrinterColumns"] if not c.get("priority")]
    assert shown == ["Ready", "Replicas", "Pool", "Model", "URL", "Autoscaler", "Age"]
    conditions = SCHEMA["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_cel_messages_name_the_field():
    rules = [
        r
        for _, n in all_nodes(SCHEMA["properties"]["spec"])
        for r in n.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 8
    assert all("spec." in r["message"] for r in rules)


def rbac_rules():
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()))
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    return role["rules"]


def test_rbac_grants_no_wildcards():
    for rule in rbac_rules():
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), rule
        assert "nonResourceURLs" not in rule


def test_rbac_covers_every_child_kind_the_operator_writes():
    from t2i_operator.kube import KINDS

    allowed = {
        (g, r, v)
        for rule in rbac_rules()
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    for (api_version, kind), (_, plural, _) in KINDS.items():
        group = api_version.split("/")[0] if "/" in api_version else ""
        if kind in ("Pod", "Event", "Text2ImageService", "Node"):
            continue
        for verb in ("get", "create", "patch", "delete"):
            assert (group, plural, verb) in allowed, (kind, verb)
    # Nodes are read-only (the NodesFit condition): get/list/watch and nothing else.
    assert {(v) for g, r, v in allowed if r == "nodes"} == {"get", "list", "watch"}
    # The PodDisruptionBudget child is watched like the others.
    assert {v for g, r, v in allowed if (g, r) == ("policy", "poddisruptionbudgets")} == {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    }
    # Secrets are read by name only: no list/watch of every Secret in the cluster.
    assert ("", "secrets", "list") not in allowed
    assert ("", "secrets", "watch") not in allowed
    assert ("", "persistentvolumes", "list") in allowed  # PVs are found by owner label


def test_operator_deployment_is_non_root_with_probes():
    dep = yaml.safe_load((ROOT / "deploy" / "operator.yaml").read_text())
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "t2i-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["livenessProbe"] and c["readinessProbe"]
    assert dep["spec"]["replicas"] == 1
