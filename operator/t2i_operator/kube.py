"""A small JSON REST client over the official kubernetes client's transport.

Why not the typed APIs: server-side apply needs `application/apply-patch+yaml`, and our children
are plain dicts from render/. Why not the DynamicClient: it runs API discovery (dozens of GETs and
a cache file) before the first request. The handful of kinds we touch have fixed paths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from t2i_operator.spec import API_GROUP, API_VERSION, PLURAL

# (apiVersion, kind) → (path prefix, plural, namespaced)
KINDS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Secret"): ("/api/v1", "secrets", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "Pod"): ("/api/v1", "pods", True),
    ("v1", "Event"): ("/api/v1", "events", True),
    ("v1", "PersistentVolumeClaim"): ("/api/v1", "persistentvolumeclaims", True),
    ("v1", "PersistentVolume"): ("/api/v1", "persistentvolumes", False),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): (
        "/apis/autoscaling/v2",
        "horizontalpodautoscalers",
        True,
    ),
    (f"{API_GROUP}/{API_VERSION}", "Text2ImageService"): (
        f"/apis/{API_GROUP}/{API_VERSION}",
        PLURAL,
        True,
    ),
}


@dataclass(frozen=True)
class Ref:
    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Ref:
        meta = obj["metadata"]
        return cls(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


def path_for(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    prefix, plural, namespaced = KINDS[(api_version, kind)]
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespaced else f"{prefix}/{plural}"
    return f"{path}/{name}" if name else path


class Kube:
    """get/list/apply/delete/patch over JSON; raises kubernetes ApiException on non-2xx."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api = api_client

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        params = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*params, _request_timeout=30)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return json.loads(data) if data else {}

    def get(self, ref: Ref) -> dict[str, Any] | None:
        try:
            return self.request("GET", path_for(ref.api_version, ref.kind, ref.namespace, ref.name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def list(
        self, api_version: str, kind: str, namespace: str | None, selector: str
    ) -> list[dict[str, Any]]:
        out = self.request(
            "GET", path_for(api_version, kind, namespace), query=[("labelSelector", selector)]
        )
        items = out.get("items") or []
        for item in items:  # list items carry no apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def apply(self, obj: dict[str, Any], *, manager: str, force: bool = True) -> dict[str, Any]:
        ref = Ref.of(obj)
        query = [("fieldManager", manager)]
        if force:
            query.append(("force", "true"))
        return self.request(
            "PATCH",
            path_for(ref.api_version, ref.kind, ref.namespace, ref.name),
            body=obj,
            query=query,
            content_type="application/apply-patch+yaml",
        )

    def delete(self, ref: Ref, *, uid: str | None = None) -> bool:
        """Delete (background propagation), only if the uid still matches; False if gone."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request(
                "DELETE", path_for(ref.api_version, ref.kind, ref.namespace, ref.name), body=body
            )
        except ApiException as e:
            if e.status in (404, 409):
                return False
            raise
        return True

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        path = path_for(f"{API_GROUP}/{API_VERSION}", "Text2ImageService", namespace, name)
        return self.request(
            "PATCH",
            f"{path}/status",
            body={"status": status},
            content_type="application/merge-patch+json",
        )
