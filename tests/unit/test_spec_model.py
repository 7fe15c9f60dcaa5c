"""Spec defaulting: an empty spec means the tutorial's full values.yaml."""

from t2i_operator import spec
from tutorial import OSS_SPEC, load


def test_empty_spec_has_the_tutorials_defaults():
    s = spec.parse({})
    assert s.replicas == 1
    assert s.image.pullPolicy == "IfNotPresent"
    assert s.image.pullSecrets == ()
    assert s.outputDirPath == "/tmp/sd"
    assert s.model.source == "Bundled"
    assert s.model.dir == "/models/stabilityai/sdxl-turbo"
    assert (s.service.type, s.service.port) == ("ClusterIP", 5000)
    assert s.resources == {
        "limits": {"cpu": "16", "memory": "32Gi"},
        "requests": {"cpu": "14", "memory": "24Gi"},
    }
    assert s.strategy == {"type": "RollingUpdate"}
    assert (s.nodeSelector, s.tolerations, s.affinity) == ({}, (), {})
    assert s.securityContext["capabilities"] == {"drop": ["ALL"]}
    assert s.securityContext["runAsNonRoot"] is True
    assert s.securityContext["runAsUser"] == 1000
    a = s.autoscaling
    assert (a.enabled, a.minReplicas, a.maxReplicas) == (False, 1, 3)
    assert (a.targetCPUUtilizationPercentage, a.targetMemoryUtilizationPercentage) == (80, 90)
    assert (s.placement.pool, s.placement.tdxNodeLabel.key, s.placement.tdxNodeLabel.value) == (
        "G8i",
        "nodepool-label",
        "tdx-vm-pool",
    )
    assert (s.server.steps, s.server.maxBatch, s.server.backend, s.server.threads) == (
        4,
        4,
        "auto",
        0,
    )


def test_parse_does_not_mutate_its_input():
    raw = load(OSS_SPEC)
    before = repr(raw)
    spec.parse(raw)
    assert repr(raw) == before


def test_partial_maps_merge_over_defaults_like_helm():
    s = spec.parse({"resources": {"limits": {"cpu": "32"}}, "securityContext": {"runAsUser": 2000}})
    assert s.resources["limits"] == {"cpu": "32", "memory": "32Gi"}
    assert s.resources["requests"] == {"cpu": "14", "memory": "24Gi"}
    assert s.securityContext["runAsUser"] == 2000
    assert s.securityContext["capabilities"] == {"drop": ["ALL"]}


def test_api_only_image_when_model_is_not_bundled():
    assert spec.parse({}).image_ref.endswith(":0.1.0")
    assert spec.parse(load(OSS_SPEC)).image_ref.endswith(":0.1.0-lite")
    hp = spec.parse({"model": {"source": "HostPath", "hostPath": {"path": "/data/models"}}})
    assert hp.image_ref.endswith(":0.1.0-lite")
    assert hp.model.hostPath.type == "DirectoryOrCreate"


def test_oss_defaults():
    oss = spec.parse({"model": {"source": "OSS", "oss": {"bucket": "b"}}}).model.oss
    assert oss.path == "/models"
    assert oss.capacity == "50Gi"
    assert oss.otherOpts == "-o umask=022 -o max_stat_cache_size=0 -o allow_other"
    assert oss.credentialsSecretRef.accessKeyIdKey == "akId"
    assert oss.credentialsSecretRef.accessKeySecretKey == "akSecret"
