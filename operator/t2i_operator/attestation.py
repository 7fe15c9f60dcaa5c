"""PURE: TD evidence from the server pods → the ``Attested`` condition (and Degraded).

For ``placement.pool: TDX`` the operator POSTs a fresh nonce to each Ready pod's
``/v1/attestation`` (attest.py) and checks here that the answer is bound to it: the nonce is
echoed, ``report_data`` is SHA-512 over the documented layout (docs/api.md) of that nonce and
the measurements the pod reports, and the TDX quote's REPORTDATA equals it. The quote's signature
is NOT checked here (no DCAP library in the operator image): Attested=True means "every Ready
pod returned a TDX quote bound to our nonce", which a client confirms with ``t2i-verify``.

The layout and quote parsing duplicate inference_server/attestation/layout.py (the operator image
ships without the server package); tests/unit/test_attestation.py pins the two equal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

# status.py calls with_attestation: import the module, not the name, so either loads first.
from t2i_operator import status

LAYOUT = "t2i-attestation/v1"
ATTESTED = "Attested"
TDX_TEE_TYPE = 0x81
QUOTE_HEADER_BYTES = 48
BODY_REPORT_DATA_OFFSET = 520


def report_data(nonce: bytes, model_digest: str, server_version: str, image_digest: str) -> bytes:
    digest = hashlib.sha512(LAYOUT.encode() + b"\0")
    for part in (nonce, model_digest.encode(), server_version.encode(), image_digest.encode()):
        digest.update(struct.pack(">I", len(part)) + part)
    return digest.digest()


def quote_report_data(quote: bytes) -> bytes | None:
    """REPORTDATA of a TDX quote (version 4 or 5), or None if ``quote`` is not one."""
    if len(quote) < QUOTE_HEADER_BYTES:
        return None
    version, _key, tee_type = struct.unpack_from("<HHI", quote, 0)
    body = {4: QUOTE_HEADER_BYTES, 5: QUOTE_HEADER_BYTES + 6}.get(version)
    if tee_type != TDX_TEE_TYPE or body is None:
        return None
    start = body + BODY_REPORT_DATA_OFFSET
    return quote[start : start + 64] if len(quote) >= start + 64 else None


@dataclass(frozen=True)
class PodEvidence:
    """One pod's answer: ``kind`` is bound | not_in_tee | mismatch | unavailable."""

    pod: str
    kind: str
    detail: str
    provider: str = ""
    model_digest: str = ""


def check_evidence(pod: str, nonce: bytes, code: int, body: dict[str, Any] | None) -> PodEvidence:
    """Classify one HTTP answer (``code`` 0 = no answer; ``body`` None = not JSON)."""
    body = body or {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    if code == 501 and error.get("code") == "not_in_tee":
        return PodEvidence(pod, "not_in_tee", str(error.get("message") or "not in a TD"))
    if code != 200:
        message = error.get("message") or body.get("message") or "no answer"
        return PodEvidence(pod, "unavailable", f"HTTP {code}: {message}" if code else message)
    m = body.get("measurements") if isinstance(body.get("measurements"), dict) else {}
    try:
        quote = base64.b64decode(str(body.get("quote") or ""), validate=True)
        expected = report_data(
            nonce,
            str(m["model_digest"]),
            str(m["server_version"]),
            str(m.get("image_digest") or ""),
        )
    except (KeyError, binascii.Error):
        return PodEvidence(pod, "mismatch", "the evidence is malformed")
    if body.get("nonce") != nonce.hex():
        return PodEvidence(pod, "mismatch", "the evidence does not echo the operator's nonce")
    if body.get("report_data") != expected.hex() or quote_report_data(quote) != expected:
        return PodEvidence(pod, "mismatch", "the quote's report data is not bound to the nonce")
    provider = str(body.get("provider") or "?")
    return PodEvidence(pod, "bound", "bound", provider=provider, model_digest=m["model_digest"])


def attested_condition(evidence: list[PodEvidence], now: str) -> status.Cond:
    """All Ready pods → one condition. Not in a TD or unbound evidence → False (Degraded);
    pods that could not answer this time → Unknown (not Degraded: a transient state)."""
    if not evidence:
        return status.Cond("Unknown", "NoReadyPods", "no Ready pod to request evidence from")
    for kind, state, reason in (
        ("not_in_tee", "False", "NotInTD"),
        ("mismatch", "False", "EvidenceMismatch"),
        ("unavailable", "Unknown", "EvidenceUnavailable"),
    ):
        bad = [e for e in evidence if e.kind == kind]
        if bad:
            return status.Cond(state, reason, f"pod {bad[0].pod}: {bad[0].detail}")
    providers = ", ".join(sorted({e.provider for e in evidence}))
    digests = ", ".join(sorted({e.model_digest for e in evidence}))
    return status.Cond(
        "True",
        "TDEvidence",
        f"{len(evidence)} Ready pod(s) returned {providers} quotes bound to the operator's nonce "
        f"at {now} (model {digests}); quote signatures are not verified by the operator: "
        "use t2i-verify",
    )


def with_attestation(
    desired: dict[str, status.Cond], previous: list[dict[str, Any]] | None, pool: str
) -> dict[str, status.Cond]:
    """Add the last recorded ``Attested`` (TDX pool only) to the conditions of a pass; a False
    one makes the service Degraded with its reason unless it already is for another."""
    if pool != "TDX":
        return desired
    last = next((c for c in previous or [] if c.get("type") == ATTESTED), None)
    attested = (
        status.Cond(last.get("status", "Unknown"), last.get("reason", ""), last.get("message", ""))
        if last
        else status.Cond("Unknown", "Pending", "no evidence requested from the pods yet")
    )
    out = {**desired, ATTESTED: attested}
    degraded = desired.get("Degraded")
    if attested.status == "False" and (degraded is None or degraded.status != "True"):
        out["Degraded"] = status.Cond("True", attested.reason, attested.message)
    return out


def replace_attested(
    previous: list[dict[str, Any]] | None, cond: status.Cond, now: str, generation: int
):
    """The stored conditions with ``Attested`` set to ``cond`` (lastTransitionTime kept unless
    its status changed); None when nothing would change (no write)."""
    items = list(previous or [])
    old = next((c for c in items if c.get("type") == ATTESTED), {})
    if (old.get("status"), old.get("reason"), old.get("message")) == (
        cond.status,
        cond.reason,
        cond.message,
    ):
        return None
    new = {
        "type": ATTESTED,
        "status": cond.status,
        "reason": cond.reason,
        "message": cond.message,
        "lastTransitionTime": old.get("lastTransitionTime", now)
        if old.get("status") == cond.status
        else now,
        "observedGeneration": generation,
    }
    return [c for c in items if c.get("type") != ATTESTED] + [new]
