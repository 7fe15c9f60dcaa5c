"""PodDisruptionBudget (issue 18 item 3) and sizing presets with the NodesFit verdict (item 5)."""

import pytest
from t2i_operator import capacity
from t2i_operator import spec as spec_mod
from t2i_operator.reconcile import checked_spec
from t2i_operator.render import Owner, render_all
from t2i_operator.render.deployment import effective_threads, grace_period_seconds
from t2i_operator.status import compute_status
from tutorial import by_kind

OWNER = Owner("sd", "tenant", "uid-1")
SELECTOR = {"app.kubernetes.io/name": "t2i-server", "app.kubernetes.io/instance": "sd"}


def kinds_for(raw: dict) -> dict:
    spec, problem = checked_spec(raw)
    assert problem is None, problem
    return by_kind(render_all(spec, OWNER))


# --- PodDisruptionBudget --------------------------------------------------------------------


def status_of(parsed: spec_mod.Spec, **observed) -> dict:
    """compute_status for a CR with no children yet; `observed` overrides the rest."""
    return compute_status(
        **{
            "spec": parsed,
            "owner": OWNER,
            "generation": 1,
            "deployment": None,
            "pods": [],
            "hpa": None,
            "problem": None,
            "previous": {},
            "now": "t0",
            **observed,
        }
    )


@pytest.mark.parametrize(
    ("raw", "wanted"),
    [
        ({}, False),
        ({"replicas": 1}, False),
        ({"replicas": 2}, True),
        ({"replicas": 0}, False),
        ({"replicas": 5, "podDisruptionBudget": {"enabled": False}}, False),
        # with the HPA on, its minimum decides (spec.replicas is ignored then)
        ({"replicas": 5, "autoscaling": {"enabled": True, "minReplicas": 1}}, False),
        ({"replicas": 1, "autoscaling": {"enabled": True, "minReplicas": 2}}, True),
    ],
)
def test_pdb_only_while_more_than_one_replica_is_wanted(raw, wanted):
    assert ("PodDisruptionBudget" in kinds_for(raw)) is wanted


def test_pdb_shape():
    pdb = kinds_for({"replicas": 3})["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["metadata"]["name"] == "sd"
    assert pdb["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": SELECTOR},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }
    custom = kinds_for({"replicas": 4, "podDisruptionBudget": {"maxUnavailable": "50%"}})
    assert custom["PodDisruptionBudget"]["spec"]["maxUnavailable"] == "50%"


# --- Sizing presets -------------------------------------------------------------------------


def test_smallest_preset_equals_the_defaults():
    assert spec_mod.parse({"size": "ecs.g8i.4xlarge"}).resources == spec_mod.DEFAULT_RESOURCES
    assert spec_mod.parse({"size": "ecs.g8i.4xlarge"}).server == spec_mod.parse({}).server


@pytest.mark.parametrize("size", list(spec_mod.SIZES))
def test_every_preset_leaves_headroom_and_fits_its_instance(size):
    vcpus = spec_mod.SIZES[size]
    parsed = spec_mod.parse({"size": size})
    req, lim = parsed.resources["requests"], parsed.resources["limits"]
    memory_gib = 4 * vcpus
    assert int(req["cpu"]) < vcpus  # room for the kubelet, system daemons and DaemonSets
    assert int(lim["cpu"]) == vcpus
    assert int(req["memory"].removesuffix("Gi")) < int(lim["memory"].removesuffix("Gi"))
    assert int(lim["memory"].removesuffix("Gi")) <= memory_gib * 0.8
    assert effective_threads(parsed) == vcpus  # derived from the CPU limit
    assert parsed.server.maxBatch == vcpus // 4
    assert grace_period_seconds(parsed) <= 3600


def test_presets_grow_with_the_instance():
    sized = [spec_mod.parse({"size": s}) for s in spec_mod.SIZES]
    batches = [s.server.maxBatch for s in sized]
    memories = [int(s.resources["requests"]["memory"].removesuffix("Gi")) for s in sized]
    assert batches == sorted(batches) and len(set(batches)) == len(batches)
    assert memories == sorted(memories) and len(set(memories)) == len(memories)


def test_explicit_fields_override_the_preset_one_by_one():
    parsed = spec_mod.parse(
        {
            "size": "ecs.g8i.8xlarge",
            "resources": {"limits": {"cpu": "20"}},
            "server": {"maxBatch": 2},
        }
    )
    assert parsed.resources["limits"]["cpu"] == "20"
    assert parsed.resources["limits"]["memory"] == "40Gi"  # still the preset's
    assert parsed.resources["requests"] == {"cpu": "28", "memory": "32Gi"}
    assert parsed.server.maxBatch == 2
    assert effective_threads(parsed) == 20  # threads follow the overridden limit


def test_deployment_carries_the_preset():
    c = kinds_for({"size": "ecs.g8i.16xlarge"})["Deployment"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert c["resources"] == {
        "requests": {"cpu": "56", "memory": "48Gi"},
        "limits": {"cpu": "64", "memory": "56Gi"},
    }
    assert c["args"][c["args"].index("--max-batch") + 1] == "16"
    assert c["args"][c["args"].index("--threads") + 1] == "64"


def test_status_shows_the_effective_size():
    parsed = spec_mod.parse({"size": "ecs.g8i.8xlarge"})
    status = status_of(parsed, threads=effective_threads(parsed))
    assert status["size"] == "ecs.g8i.8xlarge"
    assert status["sizing"] == "cpu 28/32 memory 32Gi/40Gi maxBatch 8 threads 32"


# --- NodesFit -------------------------------------------------------------------------------


def node(name: str, cpu: str, memory: str, **labels: str) -> dict:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": memory}},
    }


IT = "node.kubernetes.io/instance-type"
G8I_8X = node("a", "31800m", "120Gi", **{IT: "ecs.g8i.8xlarge"})
G8I_4X = node("b", "15800m", "60Gi", **{IT: "ecs.g8i.4xlarge"})
TDX_48X = node("t", "190", "750Gi", **{IT: "ecs.g8i.48xlarge", "nodepool-label": "tdx-vm-pool"})
OTHER = node("c", "500", "2000Gi", **{IT: "ecs.c7.2xlarge"})


def verdict(raw: dict, nodes: list[dict]):
    return capacity.nodes_fit(spec_mod.parse(raw), nodes)


def test_fits_when_a_pool_node_has_the_allocatable():
    got = verdict({"size": "ecs.g8i.8xlarge"}, [G8I_8X, G8I_4X])
    assert (got.status, got.reason) == ("True", "Fits")
    assert "1 of 2 nodes" in got.message


def test_no_nodes_fit_names_the_numbers():
    # the 48xlarge preset on g8i nodes: the only big node is TDX, excluded from the G8i pool
    got = verdict({"size": "ecs.g8i.48xlarge"}, [G8I_8X, G8I_4X, TDX_48X, OTHER])
    assert (got.status, got.reason) == ("False", "NoNodesFit")
    assert "cpu 168" in got.message and "memory 112Gi" in got.message
    assert "a (cpu 31.8, memory 120Gi)" in got.message


def test_no_nodes_in_pool():
    got = verdict({"placement": {"pool": "TDX"}}, [G8I_8X, OTHER])
    assert (got.status, got.reason) == ("False", "NoNodesInPool")
    got = verdict({"nodeSelector": {"zone": "x"}}, [G8I_8X])
    assert got.reason == "NoNodesInPool"


def test_cordoned_nodes_and_user_affinity_count():
    cordoned = {**G8I_8X, "spec": {"unschedulable": True}}
    assert verdict({}, [cordoned]).reason == "NoNodesInPool"
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]
            }
        }
    }
    assert verdict({"affinity": affinity}, [G8I_8X]).reason == "NoNodesInPool"
    assert verdict({"placement": {"pool": "Any"}}, [OTHER]).reason == "Fits"


def test_requests_default_to_limits():
    # no requests at all: the API server uses the limits, so must the verdict
    big = spec_mod.Spec(resources={"limits": {"cpu": "40", "memory": "1Gi"}})
    assert capacity.nodes_fit(big, [G8I_8X]).reason == "NoNodesFit"
    small = spec_mod.Spec(resources={"limits": {"cpu": "30", "memory": "1Gi"}})
    assert capacity.nodes_fit(small, [G8I_8X]).reason == "Fits"


def test_status_keeps_the_last_verdict_on_status_only_passes():
    parsed = spec_mod.parse({})
    first = status_of(parsed, now="t1", capacity=capacity.nodes_fit(parsed, []))
    again = status_of(parsed, previous=first, now="t2")
    fits = [c for c in again["conditions"] if c["type"] == "NodesFit"]
    assert fits and fits[0]["reason"] == "NoNodesInPool"
    assert fits[0]["lastTransitionTime"] == "t1"
