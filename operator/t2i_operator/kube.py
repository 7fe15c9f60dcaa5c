"""A small JSON REST client: urllib3 with the official kubernetes client's Configuration.

Why not the typed APIs: server-side apply needs `application/apply-patch+yaml`, and our children
are plain dicts from render/. Why not the DynamicClient: it runs API discovery (dozens of GETs and
a cache file) before the first request. The handful of kinds we touch have fixed paths.

Only PUBLIC parts of the kubernetes package are used (Configuration's documented attributes,
`auth_settings()`, ApiException), which are the same in every release the pin allows
(>=30): the generated ApiClient's request plumbing changed shape in 37 (`param_serialize`).

Every name in a path comes from a spec or an object: each is checked as ONE path segment and
percent-encoded, so a name like `../../victim/secrets/x` can never address another namespace
(the operator's identity must never be a way around the tenant's RBAC).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from t2i_operator.spec import API_GROUP, API_VERSION, PLURAL

# (apiVersion, kind) → (path prefix, plural, namespaced)
KINDS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Secret"): ("/api/v1", "secrets", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "Pod"): ("/api/v1", "pods", True),
    ("v1", "PersistentVolumeClaim"): ("/api/v1", "persistentvolumeclaims", True),
    ("v1", "PersistentVolume"): ("/api/v1", "persistentvolumes", False),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): (
        "/apis/autoscaling/v2",
        "horizontalpodautoscalers",
        True,
    ),
    ("policy/v1", "PodDisruptionBudget"): ("/apis/policy/v1", "poddisruptionbudgets", True),
    ("v1", "Node"): ("/api/v1", "nodes", False),  # read-only: the NodesFit condition
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (
        "/apis/monitoring.coreos.com/v1",
        "servicemonitors",
        True,
    ),
    ("keda.sh/v1alpha1", "ScaledObject"): ("/apis/keda.sh/v1alpha1", "scaledobjects", True),
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


# What the API server accepts as an object or namespace name (DNS subdomain, ≤253).
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def segment(value: str) -> str:
    """`value` as exactly one path segment: a valid object name, percent-encoded anyway.

    Raises ValueError for anything else ("..", "a/b", "") — before any request is made."""
    if not NAME_RE.match(value or "") or ".." in value:
        raise ValueError(f"not a valid object name: {value!r}")
    return quote(value, safe="")


def path_for(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    prefix, plural, namespaced = KINDS[(api_version, kind)]
    if namespaced and (namespace is not None or name):
        path = f"{prefix}/namespaces/{segment(namespace or '')}/{plural}"
    else:  # cluster-scoped, or a list across every namespace (namespace None, no name)
        path = f"{prefix}/{plural}"
    return f"{path}/{segment(name)}" if name else path


def _pool(config: k8s.Configuration) -> urllib3.PoolManager:
    """A connection pool with the Configuration's TLS settings (CA, client cert, verification)."""
    tls: dict[str, Any] = {}
    if config.verify_ssl:
        tls["cert_reqs"] = "CERT_REQUIRED"
        if config.ssl_ca_cert:
            tls["ca_certs"] = config.ssl_ca_cert
    else:
        tls["cert_reqs"] = "CERT_NONE"
    if config.cert_file:
        tls["cert_file"] = config.cert_file
    if config.key_file:
        tls["key_file"] = config.key_file
    if getattr(config, "tls_server_name", None):
        tls["server_hostname"] = config.tls_server_name
    if config.assert_hostname is not None:
        tls["assert_hostname"] = config.assert_hostname
    if config.proxy:
        return urllib3.ProxyManager(config.proxy, maxsize=8, **tls)
    return urllib3.PoolManager(maxsize=8, **tls)


class Kube:
    """get/list/apply/delete/patch over JSON; raises kubernetes ApiException on non-2xx."""

    def __init__(self, config: k8s.Configuration, user_agent: str = "t2i-operator") -> None:
        self.config = config
        self.user_agent = user_agent  # names our requests in audit logs
        self.http = _pool(config)

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "Content-Type": content_type,
            "User-Agent": self.user_agent,
        }
        # auth_settings() calls the refresh hook first (in-cluster: the rotated, projected
        # token) and knows where this release keeps the token (`authorization` up to 36,
        # `BearerToken` from 37).
        for setting in self.config.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        url = self.config.host.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
        response = self.http.request(
            method,
            url,
            body=json.dumps(body).encode() if body is not None else None,
            headers=self._headers(content_type),
            timeout=urllib3.Timeout(total=30),
            retries=False,
        )
        data = response.data
        if not 200 <= response.status <= 299:
            error = ApiException(status=response.status, reason=response.reason)
            error.body = data.decode(errors="replace")
            error.headers = response.headers
            raise error
        return json.loads(data) if data else {}

    def get(self, ref: Ref) -> dict[str, Any] | None:
        try:
            return self.request("GET", path_for(ref.api_version, ref.kind, ref.namespace, ref.name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def serves(self, api_version: str, kind: str) -> bool:
        """The API server serves `kind` (a CRD's group/version is installed), by discovery
        (allowed to every authenticated client: no RBAC needed)."""
        prefix, plural, _ = KINDS[(api_version, kind)]
        try:
            found = self.request("GET", prefix)
        except ApiException as e:
            if e.status in (404, 503):  # not installed / group known but not served yet
                return False
            raise
        return any(r.get("name") == plural for r in found.get("resources") or [])

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

    def merge_patch(self, ref: Ref, patch: dict[str, Any], *, manager: str) -> dict[str, Any]:
        return self.request(
            "PATCH",
            path_for(ref.api_version, ref.kind, ref.namespace, ref.name),
            body=patch,
            query=[("fieldManager", manager)],
            content_type="application/merge-patch+json",
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
