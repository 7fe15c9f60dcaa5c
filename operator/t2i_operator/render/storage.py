"""OSS model storage, as the tutorial creates it by hand: credentials Secret, static CSI PV, PVC.

The Secret is a copy of the user's AccessKey pair under the key names the CSI driver reads
(akId/akSecret), owned by the CR so it goes away with it. The PV is cluster-scoped: it carries an
owner *label* (not an ownerReference, which the garbage collector would honour by deleting it
from under a namespaced owner) and is removed by the CR's finalizer.
"""

from __future__ import annotations

import base64
from typing import Any

from t2i_operator.render.common import (
    LABEL_OWNER,
    LABEL_PVNAME,
    Credentials,
    Owner,
    credentials_secret_name,
    labels,
    namespaced_meta,
    pv_label,
    pv_name,
    pvc_name,
)
from t2i_operator.spec import Spec

CSI_DRIVER = "ossplugin.csi.alibabacloud.com"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def render_credentials_secret(owner: Owner, credentials: Credentials) -> dict[str, Any]:
    # `data`, not `stringData`: stringData is write-only, so a live/desired comparison would
    # always differ and every resync would write.
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": namespaced_meta(owner, credentials_secret_name(owner)),
        "type": "Opaque",
        # Tampering is refused by the API server (the copy is not watched, see handlers.py);
        # a rotated key is a delete + create (apply.py).
        "immutable": True,
        "data": {
            "akId": _b64(credentials.access_key_id),
            "akSecret": _b64(credentials.access_key_secret),
        },
    }


def render_pv(spec: Spec, owner: Owner) -> dict[str, Any]:
    oss = spec.model.oss
    assert oss is not None
    name = pv_name(owner, oss)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "labels": {
                **labels(owner),
                LABEL_PVNAME: pv_label(owner, oss),
                LABEL_OWNER: owner.owner_label,
            },
        },
        "spec": {
            "capacity": {"storage": oss.capacity},
            "accessModes": ["ReadOnlyMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            # "" = static binding only, even on clusters with a default StorageClass.
            "storageClassName": "",
            "csi": {
                "driver": CSI_DRIVER,
                "volumeHandle": name,
                "nodePublishSecretRef": {
                    "name": credentials_secret_name(owner),
                    "namespace": owner.namespace,
                },
                "volumeAttributes": {
                    "bucket": oss.bucket,
                    "url": oss.endpoint,
                    "otherOpts": oss.otherOpts,
                    "path": oss.path,
                },
            },
        },
    }


def render_pvc(spec: Spec, owner: Owner) -> dict[str, Any]:
    oss = spec.model.oss
    assert oss is not None
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": namespaced_meta(owner, pvc_name(owner, oss)),
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "resources": {"requests": {"storage": oss.capacity}},
            "storageClassName": "",
            "selector": {"matchLabels": {LABEL_PVNAME: pv_label(owner, oss)}},
        },
    }


def render_oss_storage(spec: Spec, owner: Owner, credentials: Credentials) -> list[dict[str, Any]]:
    return [
        render_credentials_secret(owner, credentials),
        render_pv(spec, owner),
        render_pvc(spec, owner),
    ]
