"""I/O for the ``Attested`` condition: ask each Ready pod of a TDX service for TD evidence,
then record the verdict (the logic is the pure t2i_operator.attestation).

A kopf timer (main.py, --attestation-seconds) calls ``attest`` for every TDX service. Each pod
gets its own fresh nonce at ``http://<pod IP>:5000/v1/attestation``, with a bounded timeout,
outside the per-service lock (a slow pod never blocks reconciles). The verdict is written under
that lock in one status write, recomputed with Attested folded in (False → Degraded).

TEST ONLY: ``T2I_ATTESTATION_URL_OVERRIDE`` (a base URL) makes the operator ask that URL
instead of each pod's IP — kwok pods run no containers, so the e2e tests point it at a real
local t2i-server. Never set it in a real deployment: it would attest a different server.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from t2i_operator import reconcile
from t2i_operator import spec as spec_mod
from t2i_operator.attestation import (
    PodEvidence,
    attested_condition,
    check_evidence,
    replace_attested,
)
from t2i_operator.kube import Kube
from t2i_operator.render.common import CONTAINER_PORT, selector_string
from t2i_operator.status import Cond

URL_OVERRIDE_ENV = "T2I_ATTESTATION_URL_OVERRIDE"
TIMEOUT_SECONDS = 10.0
MAX_BODY = 256 * 1024  # a TDX quote is a few KiB; never buffer an unbounded answer


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return (
        not (pod.get("metadata") or {}).get("deletionTimestamp")
        and bool(status.get("podIP"))
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
    )


def probe(base_url: str, nonce: bytes, timeout: float) -> tuple[int, dict[str, Any] | None]:
    """(HTTP status or 0 when there was no answer, the JSON body or None)."""
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/v1/attestation",
        data=json.dumps({"nonce": nonce.hex()}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            code, raw = response.status, response.read(MAX_BODY)
    except urllib.error.HTTPError as error:
        code, raw = error.code, error.read(MAX_BODY)
    except (urllib.error.URLError, OSError) as error:
        return 0, {"message": f"no answer: {getattr(error, 'reason', error)}"}
    try:
        body = json.loads(raw)
    except ValueError:
        return code, None
    return code, body if isinstance(body, dict) else None


def gather(pods: list[dict[str, Any]], timeout: float) -> list[PodEvidence]:
    override = os.environ.get(URL_OVERRIDE_ENV)
    evidence = []
    for pod in filter(_ready, pods):
        name = pod["metadata"]["name"]
        base = override or f"http://{pod['status']['podIP']}:{CONTAINER_PORT}"
        nonce = secrets.token_bytes(32)
        code, body = probe(base, nonce, timeout)
        evidence.append(check_evidence(name, nonce, code, body))
    return evidence


def _applied_on_tdx(cr: dict[str, Any]) -> bool:
    """Only a TDX placement that was applied (its generation observed) is attested: a newer
    spec that could not be applied must not be stamped as applied by this timer's status write."""
    status = cr.get("status") or {}
    return status.get("pool") == "TDX" and status.get("observedGeneration") == cr["metadata"].get(
        "generation"
    )


def attest(kube: Kube, namespace: str, name: str, timeout: float = TIMEOUT_SECONDS) -> Cond | None:
    """One round for one service; the new Attested condition when it changed (status written)."""
    cr = reconcile._fresh(kube, namespace, name)
    if cr is None or not _applied_on_tdx(cr):
        return None
    owner = reconcile.owner_of(cr)
    pods = kube.list("v1", "Pod", namespace, selector_string(owner))
    cond = attested_condition(gather(pods, timeout), reconcile.now())
    with reconcile._locks[(namespace, name)]:
        cr = reconcile._fresh(kube, namespace, name)
        if cr is None or not _applied_on_tdx(cr):
            return None
        status = cr.get("status") or {}
        conditions = replace_attested(
            status.get("conditions"), cond, reconcile.now(), cr["metadata"].get("generation", 0)
        )
        if conditions is None:
            return None
        # One write: status recomputed from the children with the new Attested folded in
        # (Degraded follows it). When that changes nothing else, or an input problem stands
        # (only a full pass may clear it), write the new condition alone.
        with_new = {**cr, "status": {**status, "conditions": conditions}}
        ready_reason = next((c.get("reason") for c in conditions if c.get("type") == "Ready"), None)
        if ready_reason in reconcile.INPUT_PROBLEMS or not reconcile.refresh_status(
            kube, with_new, spec_mod.parse(cr.get("spec")), None
        ):
            kube.patch_status(namespace, name, {"conditions": conditions})
    return cond


def is_tdx(spec: Any, **_: Any) -> bool:
    return (spec.get("placement") or {}).get("pool") == "TDX"


def attestation_timer(
    name: str, namespace: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """kopf timer body (registered by main.py for TDX services); a new False verdict is also a
    Warning Event on the service."""
    try:
        cond = attest(memo.kube, namespace, name)
    except ApiException as e:
        if reconcile.going_away(e):
            return
        raise
    if cond is not None and cond.status == "False":
        kopf.warn(body, reason=cond.reason, message=cond.message)
