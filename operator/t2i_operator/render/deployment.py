"""The server Deployment: container, probes, model volume, placement, security context."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from t2i_operator.render.common import (
    CONTAINER_PORT,
    Owner,
    namespaced_meta,
    pvc_name,
    selector_labels,
)
from t2i_operator.render.placement import merged_affinity
from t2i_operator.render.podknobs import (
    drop_overridden_flags,
    extra_volume_mounts,
    extra_volumes,
    flag_env_name,
    merged_env,
    pod_fields,
    probe_timing,
    template_metadata,
    user_env_names,
)
from t2i_operator.spec import Placement, Server, Spec, TDXEvidence

CONTAINER_NAME = "t2i-server"
OUTPUT_VOLUME = "output-volume"  # the tutorial's volume names
MODEL_VOLUME = "data-volume"
# The tutorial waits ~10 minutes for the model to load; allow 15 before the kubelet restarts it.
STARTUP_PERIOD_SECONDS = 5
STARTUP_FAILURE_THRESHOLD = 180
# Longer than the startup allowance, so slow model loading is not reported as a failed rollout.
PROGRESS_DEADLINE_SECONDS = 1200

# Graceful shutdown (the server drains on SIGTERM: stops accepting, fails /readyz, finishes
# admitted work for at most --drain-timeout). The pod's grace period must cover, in order:
# - PRESTOP_SECONDS: the preStop sleep. Deleting a pod and removing it from the Service's
#   endpoints happen in parallel; kube-proxies and load balancers take a few seconds to stop
#   sending it new connections. Without the sleep the server would stop accepting while
#   traffic still arrives (connection refused); with it, the server keeps serving until the
#   endpoints are gone, and only then receives SIGTERM.
# - the drain: the longest generation that can be running — one full batch.
# - DRAIN_MARGIN_SECONDS: the server's exit after the drain, before the kubelet's SIGKILL.
PRESTOP_SECONDS = 5
DRAIN_MARGIN_SECONDS = 5
# A bound on one denoising step of ONE image at the largest size (1024²) on the smallest CPU
# the pools offer (ecs.g8i.4xlarge, 16 vCPU); a batch costs about this times its size.
SECONDS_PER_IMAGE_STEP = 3
MIN_GRACE_SECONDS = 30
MAX_GRACE_SECONDS = 3600


def cpu_cores(quantity: Any) -> Decimal | None:
    """A CPU quantity ("16", "15500m", 2, "0.5") in cores; None when absent or unparseable."""
    if quantity is None:
        return None
    text = str(quantity).strip()
    try:
        return Decimal(text[:-1]) / 1000 if text.endswith("m") else Decimal(text)
    except ArithmeticError:
        return None


def effective_threads(spec: Spec) -> int:
    """server.threads, or the CPU limit rounded down (min 1) when it is 0 = derive."""
    if spec.server.threads > 0:
        return spec.server.threads
    limits = spec.resources.get("limits") or {}
    requests = spec.resources.get("requests") or {}
    cores = cpu_cores(limits.get("cpu", requests.get("cpu")))
    return max(1, int(cores)) if cores is not None else 0


def _normalize_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """Quantities as strings, as the API server returns them (keeps the no-op check exact)."""
    return {
        section: {k: str(v) for k, v in values.items()}
        for section, values in resources.items()
        if isinstance(values, dict) and values
    }


def grace_period_seconds(spec: Spec) -> int:
    """spec.server.gracePeriodSeconds, or enough for the longest generation: one full batch at
    the default steps (requests asking for more steps get a clean 503 if they cannot finish)."""
    if spec.server.gracePeriodSeconds > 0:
        return spec.server.gracePeriodSeconds
    longest = spec.server.maxBatch * max(spec.server.steps, 1) * SECONDS_PER_IMAGE_STEP
    derived = PRESTOP_SECONDS + longest + DRAIN_MARGIN_SECONDS
    return min(max(derived, MIN_GRACE_SECONDS), MAX_GRACE_SECONDS)


def drain_timeout_seconds(spec: Spec) -> int:
    """What the server may spend finishing admitted work after SIGTERM: the grace period minus
    the preStop sleep (already spent) and a margin for the exit itself."""
    return max(1, grace_period_seconds(spec) - PRESTOP_SECONDS - DRAIN_MARGIN_SECONDS)


def server_args(spec: Spec) -> list[str]:
    """The server's flags; with allowOperatorEnvOverride, a flag whose T2I_ name the user sets
    in spec.container.env is left out so that the environment variable takes effect."""
    args = operator_server_args(spec)
    if spec.container.allowOperatorEnvOverride:
        args = drop_overridden_flags(args, user_env_names(spec))
    return args


def operator_server_args(spec: Spec) -> list[str]:
    public = ["--public-base-url", spec.server.publicBaseURL] if spec.server.publicBaseURL else []
    tsm = ["--tsm-report-root", TSM_MOUNT_PATH] if spec.placement.mounts_configfs_tsm else []
    return [
        "--model-dir",
        spec.model.dir,
        "--model-name",
        spec.model.name,
        "--port",
        str(CONTAINER_PORT),
        "--output-dir",
        spec.outputDirPath,
        "--default-steps",
        str(spec.server.steps),
        "--max-batch",
        str(spec.server.maxBatch),
        "--backend",
        spec.server.backend,
        "--threads",
        str(effective_threads(spec)),
        "--ui",
        "true" if spec.server.ui else "false",
        "--drain-timeout",
        str(drain_timeout_seconds(spec)),
        *public,
        *tsm,
    ]


def _model_volume(spec: Spec, owner: Owner) -> dict[str, Any] | None:
    model = spec.model
    if model.source == "OSS":
        assert model.oss is not None
        return {
            "name": MODEL_VOLUME,
            "persistentVolumeClaim": {"claimName": pvc_name(owner, model.oss), "readOnly": True},
        }
    if model.source == "PVC":
        return {
            "name": MODEL_VOLUME,
            "persistentVolumeClaim": {"claimName": model.pvcClaimName, "readOnly": True},
        }
    if model.source == "HostPath":
        assert model.hostPath is not None
        return {
            "name": MODEL_VOLUME,
            "hostPath": {"path": model.hostPath.path, "type": model.hostPath.type},
        }
    return None  # Bundled: the model is inside the image at <mountPath>/<name>


# configfs-tsm (issue 21). In the container it is mounted outside /sys: the runtime mounts a
# read-only sysfs there, without configfs, so it could not create the mount point. The node-side
# path is the operator's setting (--configfs-tsm-host-path, set once at start by the cluster
# admin, never by a spec: a tenant must not choose what of the node is mounted into a root pod).
TSM_VOLUME = "configfs-tsm"
TSM_MOUNT_PATH = "/run/configfs-tsm/report"
TSM_HOST_PATH = "/sys/kernel/config/tsm/report"
_tsm = {"host_path": TSM_HOST_PATH}


def set_configfs_tsm_host_path(path: str) -> None:
    """Where the nodes expose configfs-tsm's report directory (operator flag)."""
    _tsm["host_path"] = path


def tsm_volume() -> dict[str, Any]:
    return {"name": TSM_VOLUME, "hostPath": {"path": _tsm["host_path"], "type": "Directory"}}


def container_security_context(spec: Spec) -> dict[str, Any]:
    """spec.securityContext; as uid 0 (still without capabilities or privilege escalation) when
    the pod mounts configfs-tsm: its report directory is root's, and a quote needs an entry
    made there."""
    if not spec.placement.mounts_configfs_tsm:
        return spec.securityContext
    return {**spec.securityContext, "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False}


def output_volume(spec: Spec) -> dict[str, Any]:
    """The generated images' volume: the pod's own emptyDir, or the shared ReadWriteMany claim
    (spec.imageStorage) every replica writes to and serves from."""
    storage = spec.imageStorage
    if storage.type == "PVC":
        return {"name": OUTPUT_VOLUME, "persistentVolumeClaim": {"claimName": storage.pvcClaimName}}
    return {"name": OUTPUT_VOLUME, "emptyDir": {}}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 3,
    }


def operator_env(spec: Spec) -> list[dict[str, Any]]:
    threads = effective_threads(spec)
    # torch reads OMP_NUM_THREADS at import, before the server parses --threads.
    return [{"name": "OMP_NUM_THREADS", "value": str(threads)}] if threads > 0 else []


def operator_env_names() -> list[str]:
    """Every env name the operator owns: OMP_NUM_THREADS and T2I_<FLAG> of each flag it passes
    (the CRD's CEL rule on spec.container.env lists the same names; a unit test keeps them so)."""
    full = Spec(
        server=Server(threads=1, publicBaseURL="http://x"),
        placement=Placement(pool="TDX", tdxEvidence=TDXEvidence(configfsTsm=True)),
    )
    flags = [a for a in operator_server_args(full) if a.startswith("--")]
    return sorted({"OMP_NUM_THREADS", *(flag_env_name(f) for f in flags)})


def render_container(spec: Spec, owner: Owner) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [{"name": OUTPUT_VOLUME, "mountPath": spec.outputDirPath}]
    if _model_volume(spec, owner) is not None:
        mounts.append({"name": MODEL_VOLUME, "mountPath": spec.model.mountPath, "readOnly": True})
    if spec.placement.mounts_configfs_tsm:
        mounts.append({"name": TSM_VOLUME, "mountPath": TSM_MOUNT_PATH})
    mounts.extend(extra_volume_mounts(spec))
    probes = spec.container.probes
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image_ref,
        "imagePullPolicy": spec.image.pullPolicy,
        "command": ["t2i-server"],
        "args": server_args(spec),
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "readinessProbe": probe_timing(_probe("/readyz", 5, 3), probes.readiness),
        "livenessProbe": probe_timing(_probe("/healthz", 10, 3), probes.liveness),
        "startupProbe": probe_timing(
            _probe("/healthz", STARTUP_PERIOD_SECONDS, STARTUP_FAILURE_THRESHOLD), probes.startup
        ),
        "securityContext": container_security_context(spec),
        "volumeMounts": mounts,
        # Keep serving while the endpoints are removed, then SIGTERM (see PRESTOP_SECONDS).
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        # A server that exits at start (missing model, a backend its image cannot run) prints
        # why as its last log line; the kubelet keeps it in lastState, and status shows it.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    env = merged_env(operator_env(spec), spec)
    if env:
        container["env"] = env
    resources = _normalize_resources(spec.resources)
    if resources:
        container["resources"] = resources
    return container


def render_pod_spec(spec: Spec, owner: Owner) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [output_volume(spec)]
    model_volume = _model_volume(spec, owner)
    if model_volume is not None:
        volumes.append(model_volume)
    if spec.placement.mounts_configfs_tsm:
        volumes.append(tsm_volume())
    volumes.extend(extra_volumes(spec))
    pod: dict[str, Any] = {
        # The server never talks to the Kubernetes API.
        "automountServiceAccountToken": False,
        # Service links would inject <SERVICE>_PORT=tcp://... variables; for a Service named
        # "t2i" that is T2I_PORT, which the server reads as its --port and refuses to start.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace_period_seconds(spec),
        "containers": [render_container(spec, owner)],
        "volumes": volumes,
    }
    if spec.image.pullSecrets:
        pod["imagePullSecrets"] = [{"name": n} for n in spec.image.pullSecrets]
    if spec.nodeSelector:
        pod["nodeSelector"] = dict(spec.nodeSelector)
    if spec.tolerations:
        pod["tolerations"] = [dict(t) for t in spec.tolerations]
    affinity = merged_affinity(spec.placement, spec.affinity)
    if affinity:
        pod["affinity"] = affinity
    pod.update(pod_fields(spec, owner))
    return pod


def render_deployment(spec: Spec, owner: Owner) -> dict[str, Any]:
    strategy = dict(spec.strategy)
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        # Own the API server's defaults explicitly: a later switch to Recreate then removes
        # them (an unowned, defaulted rollingUpdate would make that apply invalid).
        strategy.setdefault("rollingUpdate", {"maxSurge": "25%", "maxUnavailable": "25%"})
    body: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(owner)},
        "strategy": strategy,
        "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
        "template": {
            "metadata": template_metadata(spec, owner),
            "spec": render_pod_spec(spec, owner),
        },
    }
    if not spec.autoscaling.enabled:
        # While an HPA is on, replicas belong to it: we must not send the field at all.
        body["replicas"] = spec.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": namespaced_meta(owner, owner.name),
        "spec": body,
    }
