"""PURE: the versioned report-data layout (docs/api.md, "Attestation") and the TDX quote fields
a verifier needs. Stdlib only: the verifier CLI and tests import it without torch or Flask.

report_data = SHA-512(
    b"t2i-attestation/v1\\0"
    || u32be(len(nonce)) || nonce                       (raw bytes, 16..64)
    || u32be(len(model_digest)) || model_digest          (ASCII "sha256:<64 hex>")
    || u32be(len(server_version)) || server_version      (UTF-8)
    || u32be(len(image_digest)) || image_digest          (UTF-8, "" when not provided)
)
Length prefixes make the encoding unambiguous; SHA-512 fills the 64 bytes of TDX REPORTDATA.
The operator keeps its own copy (t2i_operator/attestation.py); a unit test pins both equal.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

LAYOUT = "t2i-attestation/v1"
NONCE_MIN_BYTES = 16
NONCE_MAX_BYTES = 64
REPORT_DATA_BYTES = 64

# TDX quote (Intel TDX DCAP Quote Generation Library and Quote Verification Library, Appendix
# "Quote format"): a 48-byte header (u16 version, u16 attestation key type, u32 TEE type, ...),
# then the TD report body. REPORTDATA is the last 64 bytes of the 584-byte TDX 1.0 body, at body
# offset 520. Version 5 puts a u16 body type and a u32 body size before the body.
TDX_TEE_TYPE = 0x81
QUOTE_HEADER_BYTES = 48
BODY_REPORT_DATA_OFFSET = 520


@dataclass(frozen=True)
class Measurements:
    """What the server measured and reports in clear; the report data commits to all of it."""

    model_digest: str
    server_version: str
    image_digest: str = ""


def report_data(nonce: bytes, measurements: Measurements) -> bytes:
    """The 64 bytes written to configfs-tsm ``inblob``."""
    digest = hashlib.sha512(LAYOUT.encode() + b"\0")
    for part in (
        nonce,
        measurements.model_digest.encode(),
        measurements.server_version.encode(),
        measurements.image_digest.encode(),
    ):
        digest.update(struct.pack(">I", len(part)) + part)
    return digest.digest()


class QuoteFormatError(ValueError):
    """The blob is not a TDX quote this code can read."""


def quote_report_data(quote: bytes) -> bytes:
    """REPORTDATA from a TDX quote (version 4 or 5); structure only, no signature check."""
    if len(quote) < QUOTE_HEADER_BYTES:
        raise QuoteFormatError(f"quote is {len(quote)} bytes, shorter than its header")
    version, _key_type, tee_type = struct.unpack_from("<HHI", quote, 0)
    if tee_type != TDX_TEE_TYPE:
        raise QuoteFormatError(f"quote TEE type is {tee_type:#x}, not TDX ({TDX_TEE_TYPE:#x})")
    if version == 4:
        body = QUOTE_HEADER_BYTES
    elif version == 5:
        body = QUOTE_HEADER_BYTES + 6
    else:
        raise QuoteFormatError(f"quote version {version} is not 4 or 5")
    start = body + BODY_REPORT_DATA_OFFSET
    if len(quote) < start + REPORT_DATA_BYTES:
        raise QuoteFormatError(f"quote is {len(quote)} bytes, too short for its report data")
    return quote[start : start + REPORT_DATA_BYTES]
