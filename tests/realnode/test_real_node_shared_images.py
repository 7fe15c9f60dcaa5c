"""Image URLs across replicas with real pods (issue 18 item 1): two replicas of the server on
the real node share one ReadWriteMany volume (spec.imageStorage.type PVC; a hostPath-backed PV,
which works on a single node), so an image made by one pod is served by the other, and still
after the pod that made it is replaced."""

from __future__ import annotations

from operator_harness import wait_for
from rn_helpers import TUTORIAL_BODY, condition, get_bytes, post_json, ready_pods, real_t2i

PNG = b"\x89PNG\r\n\x1a\n"


def _shared_claim(kube, real_cluster, namespace: str, claim: str) -> None:
    """A hostPath PV (world-writable directory: the server is uid 1000) pre-bound to `claim`."""
    host_dir = real_cluster.state / f"images-{namespace}"
    host_dir.mkdir(mode=0o777)
    host_dir.chmod(0o777)
    pv = f"{namespace}-{claim}"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": "",
                "hostPath": {"path": str(host_dir), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "",
                "volumeName": pv,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )


def test_an_image_made_by_one_replica_is_served_by_the_other_and_survives_its_pod(
    real_cluster, operator_pod, images, model_dir, kube, namespace
):
    name, claim = "shared", "images"
    _shared_claim(kube, real_cluster, namespace, claim)
    storage = {"type": "PVC", "pvc": {"claimName": claim}}
    kube.apply(
        real_t2i(name, namespace, images["server"], model_dir, replicas=2, imageStorage=storage)
    )

    def two_ready():
        pods = ready_pods(kube, namespace, name)
        return pods if len(pods) == 2 else None

    maker, other = wait_for(two_ready, "two ready replicas", timeout=600)
    obj = kube.get("t2i", name, namespace)
    assert condition(obj, "ImagesShared")["reason"] == "SharedClaim", obj.get("status")
    for pod in (maker, other):
        (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "output-volume"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim

    made_by, served_by = maker["status"]["podIP"], other["status"]["podIP"]
    status, body = post_json(f"http://{made_by}:5000/api/text2image", TUTORIAL_BODY)
    assert status == 200, body
    url = body["output"][0]["url"]
    assert url.startswith(f"http://{made_by}:5000/images/"), url
    path = url.split(":5000", 1)[1]
    original = get_bytes(url)
    assert original.startswith(PNG)
    # The pod that did NOT generate it serves the same bytes.
    assert get_bytes(f"http://{served_by}:5000{path}") == original

    # The maker goes away; its replacement serves the image too.
    kube("delete", "pod", maker["metadata"]["name"], "-n", namespace, "--wait=false")

    def replaced():
        pods = ready_pods(kube, namespace, name)
        uids = {p["metadata"]["uid"] for p in pods}
        fresh = [p for p in pods if p["metadata"]["uid"] != other["metadata"]["uid"]]
        if len(pods) == 2 and maker["metadata"]["uid"] not in uids and fresh:
            return fresh[0]
        return None

    new = wait_for(replaced, "the deleted replica replaced and ready", timeout=600)
    assert get_bytes(f"http://{new['status']['podIP']}:5000{path}") == original
