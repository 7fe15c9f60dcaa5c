"""The whole path with real containers: the operator installed from deploy/ and the server it
renders, both from images built here, running under runc on a real kubelet (docs/real-node.md).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import threading
import time
from pathlib import Path

import realnode
from operator_harness import wait_for
from rn_helpers import (
    TUTORIAL_BODY,
    condition,
    get_bytes,
    patch_spec,
    pod_log,
    post_json,
    ready_pods,
    real_t2i,
)

NODE = realnode.NODE_NAME
PNG = b"\x89PNG\r\n\x1a\n"


def test_operator_runs_in_cluster_from_deploy(real_cluster, operator_pod, images):
    """deploy/ as a user applies it: on the real node, from the image built here, Ready (its
    probes passed), on its ServiceAccount token (the manifest gives it no kubeconfig)."""
    spec, status = operator_pod["spec"], operator_pod["status"]
    assert spec["nodeName"] == NODE
    assert spec["serviceAccountName"] == "t2i-operator"
    (container,) = spec["containers"]
    assert container["image"] == images["operator"]
    assert not any("kubeconfig" in a for a in container.get("args", []))
    assert any(
        v["mountPath"].startswith("/var/run/secrets/kubernetes.io")
        for v in container["volumeMounts"]
    )
    (cs,) = status["containerStatuses"]
    assert cs["ready"] and cs["state"].get("running"), cs
    assert ipaddress.ip_address(status["podIP"]) in real_cluster.node.subnet  # a CNI pod IP


def _wait_ready(kube, ns: str, name: str, timeout: float = 420) -> dict:
    def ready():
        obj = kube.get("t2i", name, ns)
        return obj if condition(obj, "Ready").get("status") == "True" else None

    return wait_for(
        ready, f"t2i {ns}/{name} Ready", timeout=timeout, explain=lambda: kube.get("t2i", name, ns)
    )


def test_server_pod_serves_the_tutorial_request(
    real_cluster, operator_pod, images, model_dir, kube, namespace
):
    """The rendered PodSpec runs for real: probes pass against the real /readyz, the CR turns
    Ready only after the pod did, the tutorial's curl to the pod IP returns a PNG, and the
    server's thread count is the pod's real CPU quota (1 CPU on a 2-CPU machine)."""
    name = "sd"
    kube.apply(real_t2i(name, namespace, images["server"], model_dir))
    obj = _wait_ready(kube, namespace, name)
    (pod,) = ready_pods(kube, namespace, name)
    assert pod["spec"]["nodeName"] == NODE
    pod_ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert pod_ready["lastTransitionTime"] <= condition(obj, "Ready")["lastTransitionTime"]
    (c,) = pod["spec"]["containers"]
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["spec"]["securityContext"].get("runAsNonRoot") or c["securityContext"].get(
        "runAsNonRoot"
    )

    ip = pod["status"]["podIP"]
    status, body = post_json(f"http://{ip}:5000/api/text2image", TUTORIAL_BODY)
    assert status == 200, body
    url = body["output"][0]["url"]
    assert url.startswith(f"http://{ip}:5000/"), url
    assert get_bytes(url).startswith(PNG)

    # The CPU limit is a real CFS quota on the pod's cgroup, and the server runs that many
    # threads (not the host's 2).
    uid = pod["metadata"]["uid"]
    quotas = [
        int(q.read_text())
        for q in Path("/sys/fs/cgroup/cpu").glob(
            f"{real_cluster.node.cgroup_root.lstrip('/')}/kubepods/*/pod{uid}/cpu.cfs_quota_us"
        )
    ]
    assert quotas == [100000], quotas
    log = pod_log(real_cluster.node, namespace, pod["metadata"]["name"], "t2i-server")
    ready_lines = [
        json.loads(ln.split(" ", 3)[3]) for ln in log.splitlines() if "engine ready" in ln
    ]
    assert ready_lines and ready_lines[-1]["threads"] == 1, log[-2000:]


def test_wrong_model_path_crashloops_and_the_cr_quotes_the_server(
    real_cluster, operator_pod, images, model_dir, kube, namespace
):
    """A wrong model path: the container exits, CrashLoopBackOff, Ready=False quoting the
    server's own last line; fixing the path makes it Ready again."""
    name = "broken"
    wrong = {
        "source": "HostPath",
        "name": "nope/missing",
        "hostPath": {"path": str(model_dir), "type": "Directory"},
    }
    kube.apply(real_t2i(name, namespace, images["server"], model_dir, model=wrong))

    stayed_up: dict[str, float] = {}

    def crashloop():
        for p in kube.items("pods", namespace, f"app.kubernetes.io/instance={name}"):
            for cs in p.get("status", {}).get("containerStatuses", []):
                if (cs.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
                    return p
                # Fail fast, and say why, when the server reports the failure but keeps running.
                log = pod_log(real_cluster.node, namespace, p["metadata"]["name"], "t2i-server")
                if "model load failed" in log and cs.get("state", {}).get("running"):
                    first = stayed_up.setdefault(p["metadata"]["name"], time.monotonic())
                    assert time.monotonic() - first < 30, (
                        "the server logged a model load failure but kept running (unready) "
                        f"instead of exiting: {log.splitlines()[-1]}"
                    )
        return None

    pod = wait_for(crashloop, "CrashLoopBackOff", timeout=300)
    log = pod_log(real_cluster.node, namespace, pod["metadata"]["name"], "t2i-server")
    last = [ln for ln in log.splitlines() if ln.strip()][-1]
    assert "nope/missing" in last, log[-2000:]

    def quotes():
        ready = condition(kube.get("t2i", name, namespace), "Ready")
        return (
            ready
            if ready.get("status") == "False" and "nope/missing" in ready.get("message", "")
            else None
        )

    wait_for(quotes, "Ready=False quoting the server", timeout=120)
    patch_spec(kube, namespace, name, {"model": {"name": "stabilityai/sdxl-turbo"}})
    _wait_ready(kube, namespace, name)


def test_delete_terminates_pods_gracefully_and_leaves_nothing(
    real_cluster, operator_pod, images, model_dir, kube, namespace
):
    """Deleting the resource: its pod gets SIGTERM and stops within the grace period (not
    SIGKILLed), and no container of it is left in the node's containerd."""
    name = "gone"
    kube.apply(real_t2i(name, namespace, images["server"], model_dir))
    _wait_ready(kube, namespace, name)
    (pod,) = ready_pods(kube, namespace, name)
    watch = subprocess.Popen(
        [
            str(real_cluster.kubectl),
            "--kubeconfig",
            str(real_cluster.kubeconfig),
            "get",
            "pod",
            pod["metadata"]["name"],
            "-n",
            namespace,
            "-w",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: list[dict] = []
    reader = threading.Thread(target=lambda: _read_json_stream(watch.stdout, seen), daemon=True)
    reader.start()
    try:
        kube("delete", "t2i", name, "-n", namespace, "--wait=true", "--timeout=120s")
        wait_for(
            lambda: not kube.items("pods", namespace, f"app.kubernetes.io/instance={name}"),
            "pods gone",
            timeout=120,
        )
    finally:
        watch.terminate()
        watch.wait(10)
    reader.join(10)
    codes = [
        cs["state"]["terminated"]["exitCode"]
        for p in seen
        for cs in p.get("status", {}).get("containerStatuses", [])
        if cs.get("state", {}).get("terminated")
    ]
    # The pod object can be gone before the kubelet's last status write reaches a watcher; the
    # kubelet's own record of the exit ("container finished" ... exitCode=N) is the fallback.
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("//")[-1]
    kubelet_log = (real_cluster.state / "logs" / "kubelet.log").read_text(errors="replace")
    codes += [
        int(ln.rsplit("exitCode=", 1)[1].split()[0])
        for ln in kubelet_log.splitlines()
        if "container finished" in ln and cid in ln and "exitCode=" in ln
    ]
    assert codes, "never saw the container terminate"
    assert codes[-1] in (0, 143), codes  # SIGTERM honoured; 137 = the kubelet's SIGKILL

    def ours_left() -> list[str]:  # the kubelet's container GC removes exited containers
        # One filtered listing: a per-id `info` races the GC removing that very container.
        return real_cluster.node.ctr(
            "containers", "ls", "-q", f'labels."io.kubernetes.pod.namespace"=={namespace}'
        ).split()

    wait_for(lambda: not ours_left(), "no container of the pod left on the node", timeout=180)


def _read_json_stream(stream, out: list[dict]) -> None:
    decoder, buf = json.JSONDecoder(), ""
    for line in stream:
        buf += line
        try:
            obj, end = decoder.raw_decode(buf.strip())
        except ValueError:
            continue
        out.append(obj)
        buf = buf.strip()[end:]


def test_rolling_update_under_traffic_fails_no_request(
    real_cluster, operator_pod, images, model_dir, kube, namespace
):
    """A server field changes while a client keeps sending the tutorial's request to the ready
    endpoints (what kube-proxy would do for the Service): the new pod takes over, zero failed
    requests, and both the old and the new pod answered some of them."""
    name = "roll"
    kube.apply(real_t2i(name, namespace, images["server"], model_dir))
    _wait_ready(kube, namespace, name)
    (old,) = ready_pods(kube, namespace, name)
    endpoints: list[str] = [old["status"]["podIP"]]
    served: dict[str, int] = {}
    failures: list[str] = []
    stop = threading.Event()

    def refresh() -> None:  # ready endpoints of the Service, as kube-proxy would program them
        while not stop.is_set():
            slices = kube.items("endpointslices", namespace, f"kubernetes.io/service-name={name}")
            ready = [
                a
                for s in slices
                for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready")
                for a in e["addresses"]
            ]
            if ready:
                endpoints[:] = ready
            stop.wait(0.5)

    def client() -> None:
        i = 0
        while not stop.is_set():
            ip = endpoints[i % len(endpoints)]
            i += 1
            try:
                post_json(f"http://{ip}:5000/api/text2image", TUTORIAL_BODY, 60)
                served[ip] = served.get(ip, 0) + 1
            except Exception as e:
                failures.append(f"{ip}: {e!r}")

    threads = [threading.Thread(target=f, daemon=True) for f in (refresh, client)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: served.get(old["status"]["podIP"], 0) >= 2, "traffic to the old pod", 120)
        patch_spec(kube, namespace, name, {"server": {"steps": 2}})

        def rolled():
            pods = ready_pods(kube, namespace, name)
            new = [p for p in pods if p["metadata"]["uid"] != old["metadata"]["uid"]]
            gone = not any(
                p["metadata"]["uid"] == old["metadata"]["uid"]
                for p in kube.items("pods", namespace, f"app.kubernetes.io/instance={name}")
            )
            return new if new and gone and served.get(new[0]["status"]["podIP"], 0) >= 2 else None

        (new,) = wait_for(rolled, "the rollout done with traffic on the new pod", timeout=420)
    finally:
        stop.set()
        for t in threads:
            t.join(90)
    assert failures == []
    assert served[old["status"]["podIP"]] >= 2 and served[new["status"]["podIP"]] >= 2
