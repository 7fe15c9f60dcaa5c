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
class Placement:
    pool: str = "G8i"
    g8iInstanceTypes: tuple[str, ...] = DEFAULT_G8I_TYPES
    tdxNodeLabel: TDXLabel = field(default_factory=TDXLabel)


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
        **(
            {"g8iInstanceTypes": tuple(placement_raw["g8iInstanceTypes"])}
            if placement_raw.get("g8iInstanceTypes")
            else {}
        ),
    )

    return Spec(
        replicas=int(raw.get("replicas", 1)),
        image=image,
        model=model,
        outputDirPath=raw.get("outputDirPath") or "/tmp/sd",
        service=_pick(raw.get("service"), Service),
        resources=deep_merge(DEFAULT_RESOURCES, raw.get("resources") or {}),
        strategy=raw.get("strategy") or {"type": "RollingUpdate"},
        placement=placement,
        nodeSelector=dict(raw.get("nodeSelector") or {}),
        tolerations=tuple(raw.get("tolerations") or ()),
        affinity=dict(raw.get("affinity") or {}),
        securityContext=deep_merge(DEFAULT_SECURITY_CONTEXT, raw.get("securityContext") or {}),
        server=_pick(raw.get("server"), Server),
        autoscaling=_parse_autoscaling(raw.get("autoscaling")),
    )


def _parse_autoscaling(raw: dict[str, Any] | None) -> Autoscaling:
    """The autoscaling block; its nested QueueDepth/Schedule objects (issue 19)."""
    raw = raw or {}
    schedule = _pick(raw["schedule"], Schedule) if raw.get("schedule") is not None else None
    return _pick(
        raw, Autoscaling, queueDepth=_pick(raw.get("queueDepth"), QueueDepth), schedule=schedule
    )
