"""Typed, defaulted view of a Text2ImageService spec.

This is the ONE place that knows the defaults (the tutorial's values.yaml, adapted to our image).
The operator never writes defaults back into the stored object, so GitOps tools see no drift.
The CRD schema validates shape; this module only fills in what is missing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

API_GROUP = "t2i.dev"
API_VERSION = "v1alpha1"
KIND = "Text2ImageService"
PLURAL = "text2imageservices"

SOURCES = ("Bundled", "OSS", "PVC", "HostPath")
POOLS = ("G8i", "TDX", "Any")
BACKENDS = ("auto", "eager", "packed", "compile", "int8", "ipex")
IMAGE_STORAGE_TYPES = ("EmptyDir", "PVC")

DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "14", "memory": "24Gi"},
    "limits": {"cpu": "16", "memory": "32Gi"},
}
DEFAULT_SECURITY_CONTEXT: dict[str, Any] = {
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "allowPrivilegeEscalation": False,
    "seccompProfile": {"type": "RuntimeDefault"},
}
DEFAULT_G8I_TYPES = (
    "ecs.g8i.4xlarge",
    "ecs.g8i.8xlarge",
    "ecs.g8i.12xlarge",
    "ecs.g8i.16xlarge",
    "ecs.g8i.24xlarge",
    "ecs.g8i.48xlarge",
)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm-style merge: maps merge key by key, anything else in `override` wins."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Image:
    repository: str = "ghcr.io/t2i-operator/t2i-server"
    tag: str = "0.1.0"
    tagOnlyApi: str = "0.1.0-lite"
    pullPolicy: str = "IfNotPresent"
    pullSecrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecretRef:
    name: str = ""
    accessKeyIdKey: str = "akId"
    accessKeySecretKey: str = "akSecret"


@dataclass(frozen=True)
class OSS:
    bucket: str = ""
    endpoint: str = ""
    path: str = "/models"
    otherOpts: str = "-o umask=022 -o max_stat_cache_size=0 -o allow_other"
    capacity: str = "50Gi"
    credentialsSecretRef: SecretRef = field(default_factory=SecretRef)


@dataclass(frozen=True)
class HostPath:
    path: str = "/data/models"
    type: str = "DirectoryOrCreate"


@dataclass(frozen=True)
class Model:
    source: str = "Bundled"
    name: str = "stabilityai/sdxl-turbo"
    mountPath: str = "/models"
    oss: OSS | None = None
    pvcClaimName: str | None = None
    hostPath: HostPath | None = None

    @property
    def dir(self) -> str:
        """Where the server reads the model: <mountPath>/<name>."""
        return f"{self.mountPath.rstrip('/')}/{self.name}"


@dataclass(frozen=True)
class Service:
    type: str = "ClusterIP"
    port: int = 5000


@dataclass(frozen=True)
class TDXLabel:
    key: str = "nodepool-label"
    value: str = "tdx-vm-pool"


@dataclass(frozen=True)
class TDXEvidence:
    """How the server pods reach the TD's quote interface (issue 21)."""

    # Mount the node's configfs-tsm report directory and run the server as uid 0 (only root may
    # create report entries there); capabilities stay dropped. Off: the pods answer "not in a TD".
    configfsTsm: bool = False


@dataclass(frozen=True)
class Placement:
    pool: str = "G8i"
    g8iInstanceTypes: tuple[str, ...] = DEFAULT_G8I_TYPES
    tdxNodeLabel: TDXLabel = field(default_factory=TDXLabel)
    tdxEvidence: TDXEvidence = field(default_factory=TDXEvidence)

    @property
    def mounts_configfs_tsm(self) -> bool:
        return self.pool == "TDX" and self.tdxEvidence.configfsTsm


@dataclass(frozen=True)
class Server:
    steps: int = 4
    maxBatch: int = 4
    backend: str = "auto"
    threads: int = 0
    ui: bool = True  # the playground page at /; false for API-only deployments
    publicBaseURL: str = ""  # "" = URLs from the request (the server's own default)
    gracePeriodSeconds: int = 0  # 0 = derive from maxBatch and steps (render/deployment.py)


# --- autoscaling modes (issue 19): CPU = the chart's HPA; QueueDepth = a KEDA ScaledObject ------
AUTOSCALING_MODES = ("CPU", "QueueDepth")


@dataclass(frozen=True)
class QueueDepth:
    """KEDA Prometheus triggers on the server's own saturation signals."""

    prometheusServerAddress: str = ""  # required in QueueDepth mode (CRD CEL rule)
    targetPerReplica: int = 2  # queued images (t2i_queue_depth_images) per replica
    inFlightPerReplica: int = 0  # 0 = off; else a second trigger on t2i_requests_in_flight
    query: str = ""  # "" = sum of t2i_queue_depth_images over the Service's pods


@dataclass(frozen=True)
class Schedule:
    """A KEDA cron trigger: at least `replicas` between `start` and `end` (cron, `timezone`)."""

    start: str = "0 8 * * 1-5"
    end: str = "0 18 * * 1-5"
    timezone: str = "UTC"
    replicas: int = 1


@dataclass(frozen=True)
class Autoscaling:
    enabled: bool = False
    minReplicas: int = 1
    maxReplicas: int = 3
    targetCPUUtilizationPercentage: int | None = 80
    targetMemoryUtilizationPercentage: int | None = 90
    mode: str = "CPU"
    scaleDownStabilizationSeconds: int | None = None  # None = the autoscaler's default (300)
    queueDepth: QueueDepth = field(default_factory=QueueDepth)
    schedule: Schedule | None = None

    @property
    def keda(self) -> bool:
        """Scaling belongs to a KEDA ScaledObject (when KEDA is installed)."""
        return self.enabled and self.mode == "QueueDepth"


# --- Pod-level knobs (issue 18 item 2): escape hatches platform teams need -----------------


@dataclass(frozen=True)
class ProbeTiming:
    """Overrides for one probe; None keeps the operator's value (render/deployment.py)."""

    periodSeconds: int | None = None
    failureThreshold: int | None = None
    timeoutSeconds: int | None = None
    initialDelaySeconds: int | None = None


@dataclass(frozen=True)
class Probes:
    startup: ProbeTiming = field(default_factory=ProbeTiming)
    readiness: ProbeTiming = field(default_factory=ProbeTiming)
    liveness: ProbeTiming = field(default_factory=ProbeTiming)


@dataclass(frozen=True)
class Container:
    """Extra container settings: env, volume mounts, probe timings."""

    env: tuple[dict[str, Any], ...] = ()
    allowOperatorEnvOverride: bool = False
    volumeMounts: tuple[dict[str, Any], ...] = ()
    probes: Probes = field(default_factory=Probes)


@dataclass(frozen=True)
class Pod:
    """Extra pod settings, on the Deployment's pod template."""

    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    serviceAccountName: str = ""
    priorityClassName: str = ""
    runtimeClassName: str = ""
    topologySpreadConstraints: tuple[dict[str, Any], ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()


def parse_pod(raw: dict[str, Any] | None) -> Pod:
    raw = raw or {}
    return _pick(
        raw,
        Pod,
        labels=dict(raw.get("labels") or {}),
        annotations=dict(raw.get("annotations") or {}),
        topologySpreadConstraints=tuple(raw.get("topologySpreadConstraints") or ()),
        volumes=tuple(raw.get("volumes") or ()),
    )


def parse_container(raw: dict[str, Any] | None) -> Container:
    raw = raw or {}
    probes_raw = raw.get("probes") or {}
    probes = Probes(
        **{k: _pick(probes_raw.get(k), ProbeTiming) for k in ("startup", "readiness", "liveness")}
    )
    return _pick(
        raw,
        Container,
        env=tuple(raw.get("env") or ()),
        volumeMounts=tuple(raw.get("volumeMounts") or ()),
        probes=probes,
    )


# --- PodDisruptionBudget (issue 18 item 3) ------------------------------------------------------


@dataclass(frozen=True)
class DisruptionBudget:
    enabled: bool = True  # rendered only while more than one replica is wanted
    maxUnavailable: int | str = 1


# --- Sizing presets (issue 18 item 5) -----------------------------------------------------------
# One replica per node of the named instance type (vCPU, 4 GiB per vCPU). Formula and the
# measurements behind it: docs/operations.md "Sizing presets". ecs.g8i.4xlarge reproduces the
# defaults above exactly (requests 14 CPU / 24Gi, limits 16 / 32Gi, maxBatch 4).
SIZES: dict[str, int] = {
    "ecs.g8i.4xlarge": 16,
    "ecs.g8i.8xlarge": 32,
    "ecs.g8i.12xlarge": 48,
    "ecs.g8i.16xlarge": 64,
    "ecs.g8i.24xlarge": 96,
    "ecs.g8i.48xlarge": 192,
}
SYSTEM_CPU_FRACTION = 8  # 1/8 of the vCPUs stay free for the kubelet, system and DaemonSets
VCPUS_PER_BATCH_IMAGE = 4  # maxBatch = vCPU / 4 (4 at 16 vCPU: the measured default)
BASE_MEMORY_GIB = 24  # packed backend, batch 4, 512²: 10.7 GB peak RSS + 1024² and page cache
MEMORY_GIB_PER_EXTRA_BATCH_IMAGE = 2  # measured ~0.9 GB per extra 512² image; 2 covers 1024²
MEMORY_LIMIT_HEADROOM_GIB = 8


@dataclass(frozen=True)
class Preset:
    """What a size fills in (each value is overridden by the explicit field, if set)."""

    vcpus: int
    resources: dict[str, Any]
    maxBatch: int
    # threads are not filled: server.threads 0 derives them from the CPU limit (= vCPU here), so
    # an explicit resources.limits.cpu also moves the thread count.


def preset(size: str) -> Preset:
    """The sizing formula (pure): one replica per node of `size`."""
    vcpus = SIZES[size]
    max_batch = max(1, vcpus // VCPUS_PER_BATCH_IMAGE)
    memory = BASE_MEMORY_GIB + MEMORY_GIB_PER_EXTRA_BATCH_IMAGE * (max_batch - 4)
    return Preset(
        vcpus=vcpus,
        resources={
            "requests": {"cpu": str(vcpus - vcpus // SYSTEM_CPU_FRACTION), "memory": f"{memory}Gi"},
            "limits": {
                "cpu": str(vcpus),
                "memory": f"{memory + MEMORY_LIMIT_HEADROOM_GIB}Gi",
            },
        },
        maxBatch=max_batch,
    )


@dataclass(frozen=True)
class ImageStorage:
    """Where generated images live: each pod's own emptyDir, or one ReadWriteMany claim shared by
    every replica (image URLs then work whichever replica the Service picks)."""

    type: str = "EmptyDir"
    pvcClaimName: str | None = None


@dataclass(frozen=True)
class Monitoring:
    serviceMonitor: bool = True  # rendered only while the Prometheus Operator's CRD exists
    interval: str = "30s"
    labels: dict[str, str] = field(default_factory=dict)  # extra ServiceMonitor labels


@dataclass(frozen=True)
class Spec:
    replicas: int = 1
    image: Image = field(default_factory=Image)
    model: Model = field(default_factory=Model)
    outputDirPath: str = "/tmp/sd"
    service: Service = field(default_factory=Service)
    resources: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_RESOURCES))
    strategy: dict[str, Any] = field(default_factory=lambda: {"type": "RollingUpdate"})
    placement: Placement = field(default_factory=Placement)
    nodeSelector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] = field(default_factory=dict)
    securityContext: dict[str, Any] = field(
        default_factory=lambda: copy.deepcopy(DEFAULT_SECURITY_CONTEXT)
    )
    server: Server = field(default_factory=Server)
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    pod: Pod = field(default_factory=Pod)
    container: Container = field(default_factory=Container)
    podDisruptionBudget: DisruptionBudget = field(default_factory=DisruptionBudget)
    size: str = ""  # "" = no preset: the defaults above
    imageStorage: ImageStorage = field(default_factory=ImageStorage)
    monitoring: Monitoring = field(default_factory=Monitoring)

    @property
    def max_replicas(self) -> int:
        """The most pods this spec can run at once (the HPA's bound when autoscaling)."""
        return self.autoscaling.maxReplicas if self.autoscaling.enabled else self.replicas

    @property
    def image_ref(self) -> str:
        """The API-only image whenever the model does not come from the image itself."""
        tag = self.image.tag if self.model.source == "Bundled" else self.image.tagOnlyApi
        return f"{self.image.repository}:{tag}"


def _pick(raw: dict[str, Any] | None, cls: type, **extra: Any) -> Any:
    """Build dataclass `cls` from the keys of `raw` it knows; missing keys keep their defaults."""
    raw = raw or {}
    names = cls.__dataclass_fields__.keys()
    kwargs = {k: v for k, v in raw.items() if k in names and v is not None}
    kwargs.update(extra)
    return cls(**kwargs)


def parse(raw: dict[str, Any] | None) -> Spec:
    """Defaulted Spec from the stored (schema-validated) spec dict."""
    raw = copy.deepcopy(raw or {})
    image_raw = raw.get("image") or {}
    image = _pick(
        image_raw,
        Image,
        pullSecrets=tuple(s["name"] for s in image_raw.get("pullSecrets") or [] if s.get("name")),
    )

    model_raw = raw.get("model") or {}
    oss = None
    if model_raw.get("oss") is not None:
        oss_raw = model_raw["oss"]
        oss = _pick(
            oss_raw, OSS, credentialsSecretRef=_pick(oss_raw.get("credentialsSecretRef"), SecretRef)
        )
    host = _pick(model_raw["hostPath"], HostPath) if model_raw.get("hostPath") else None
    model = _pick(
        model_raw,
        Model,
        oss=oss,
        hostPath=host,
        pvcClaimName=(model_raw.get("pvc") or {}).get("claimName"),
    )

    placement_raw = raw.get("placement") or {}
    placement = _pick(
        placement_raw,
        Placement,
        tdxNodeLabel=_pick(placement_raw.get("tdxNodeLabel"), TDXLabel),
        tdxEvidence=_pick(placement_raw.get("tdxEvidence"), TDXEvidence),
        **(
            {"g8iInstanceTypes": tuple(placement_raw["g8iInstanceTypes"])}
            if placement_raw.get("g8iInstanceTypes")
            else {}
        ),
    )

    size = raw.get("size") or ""
    sized = preset(size) if size in SIZES else None
    base_resources = sized.resources if sized else DEFAULT_RESOURCES
    server_raw = {
        **({"maxBatch": sized.maxBatch} if sized else {}),
        **(raw.get("server") or {}),
    }

    return Spec(
        replicas=int(raw.get("replicas", 1)),
        image=image,
        model=model,
        outputDirPath=raw.get("outputDirPath") or "/tmp/sd",
        service=_pick(raw.get("service"), Service),
        resources=deep_merge(base_resources, raw.get("resources") or {}),
        strategy=raw.get("strategy") or {"type": "RollingUpdate"},
        placement=placement,
        nodeSelector=dict(raw.get("nodeSelector") or {}),
        tolerations=tuple(raw.get("tolerations") or ()),
        affinity=dict(raw.get("affinity") or {}),
        securityContext=deep_merge(DEFAULT_SECURITY_CONTEXT, raw.get("securityContext") or {}),
        server=_pick(server_raw, Server),
        autoscaling=_parse_autoscaling(raw.get("autoscaling")),
        pod=parse_pod(raw.get("pod")),
        container=parse_container(raw.get("container")),
        podDisruptionBudget=_pick(raw.get("podDisruptionBudget"), DisruptionBudget),
        size=size,
        imageStorage=parse_image_storage(raw.get("imageStorage")),
        monitoring=_pick(raw.get("monitoring"), Monitoring),
    )


def _parse_autoscaling(raw: dict[str, Any] | None) -> Autoscaling:
    """The autoscaling block; its nested QueueDepth/Schedule objects (issue 19)."""
    raw = raw or {}
    schedule = _pick(raw["schedule"], Schedule) if raw.get("schedule") is not None else None
    return _pick(
        raw, Autoscaling, queueDepth=_pick(raw.get("queueDepth"), QueueDepth), schedule=schedule
    )


def parse_image_storage(raw: dict[str, Any] | None) -> ImageStorage:
    raw = raw or {}
    return _pick(raw, ImageStorage, pvcClaimName=(raw.get("pvc") or {}).get("claimName"))
