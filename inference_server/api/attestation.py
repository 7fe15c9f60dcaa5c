"""``POST /v1/attestation``: TD evidence bound to the client's nonce (docs/api.md)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from inference_server.api.errors import ApiError, field_error
from inference_server.api.schema import parse_json_body
from inference_server.attestation.layout import NONCE_MAX_BYTES, NONCE_MIN_BYTES
from inference_server.attestation.provider import AttestationError, NotInTeeError
from inference_server.attestation.service import EXTENSION, NotMeasured, RateLimited

blueprint = Blueprint("attestation", __name__)


def parse_nonce(body: dict) -> bytes:
    value = body.get("nonce")
    if value is None:
        raise field_error("nonce", "is required (hex, 16 to 64 bytes)")
    if not isinstance(value, str):
        raise field_error("nonce", f"must be a hex string, got {type(value).__name__}")
    try:
        nonce = bytes.fromhex(value)
    except ValueError:
        raise field_error("nonce", "must be hexadecimal") from None
    if not NONCE_MIN_BYTES <= len(nonce) <= NONCE_MAX_BYTES:
        raise field_error(
            "nonce", f"must be {NONCE_MIN_BYTES} to {NONCE_MAX_BYTES} bytes, got {len(nonce)}"
        )
    return nonce


@blueprint.post("/v1/attestation")
def attestation():
    nonce = parse_nonce(parse_json_body(request.get_data()))
    attestor = current_app.extensions.get(EXTENSION)
    if attestor is None:
        raise ApiError(501, "attestation is not configured on this server", code="not_in_tee")
    try:
        return jsonify(attestor.evidence(nonce))
    except NotInTeeError as error:
        raise ApiError(501, str(error), code="not_in_tee") from None
    except RateLimited as error:
        headers = {"Retry-After": str(error.retry_after)}
        raise ApiError(429, str(error), headers=headers, code="rate_limit_exceeded") from None
    except NotMeasured as error:
        raise ApiError(503, str(error), headers={"Retry-After": "10"}, code="not_ready") from None
    except AttestationError as error:
        headers = {"Retry-After": "5"}
        raise ApiError(503, str(error), headers=headers, code="attestation_failed") from None
