"""``t2i-verify``: ask a t2i-server for TD evidence bound to a fresh nonce and check it.

Checks, each reported as passed / FAILED / not run (with why):
  evidence       the server answered with a quote (not "not in a TD")
  nonce          the response echoes our nonce
  report-data    report_data = SHA-512 over the documented layout of our nonce + the digests
  quote-binding  the quote is a TDX quote whose REPORTDATA is that value
  model-digest   the reported model digest equals --expect-model-digest or the digest of
                 --model-dir (a local copy of the model)
  image-digest   the reported image digest equals --expect-image-digest
  dcap           the quote's signature chain and TCB status, by the dcap_qvl library when it is
                 installed (it fetches collateral from a PCCS); otherwise not run, and then
                 nothing proves the quote came from real TDX hardware.
Stdlib only (plus dcap_qvl if present): runs on a client without the server's dependencies.
Exit status: 0 all checks that ran passed, 1 a check failed, 2 usage or transport error,
3 the server is not in a TD.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import inspect
import json
import secrets
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from inference_server.attestation.layout import (
    Measurements,
    QuoteFormatError,
    quote_report_data,
    report_data,
)
from inference_server.attestation.manifest import model_digest

PASS, FAIL, SKIP = "passed", "FAILED", "not run"


@dataclass(frozen=True)
class Check:
    name: str
    result: str
    detail: str


def fetch(url: str, nonce: bytes, timeout: float) -> tuple[int, dict]:
    """POST the nonce; (HTTP status, JSON body)."""
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/attestation",
        data=json.dumps({"nonce": nonce.hex()}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read())
        except ValueError:
            return error.code, {}


def check_binding(nonce: bytes, body: dict) -> tuple[list[Check], bytes | None]:
    """PURE: nonce, report-data and quote-binding checks on a 200 response body."""
    checks = []
    echoed = body.get("nonce")
    checks.append(
        Check("nonce", PASS, "echoed")
        if echoed == nonce.hex()
        else Check("nonce", FAIL, f"sent {nonce.hex()}, got {echoed!r}")
    )
    m = body.get("measurements") or {}
    try:
        measured = Measurements(
            str(m["model_digest"]), str(m["server_version"]), str(m.get("image_digest") or "")
        )
        quote = base64.b64decode(body.get("quote") or "", validate=True)
    except (KeyError, binascii.Error) as error:
        checks.append(Check("report-data", FAIL, f"malformed evidence: {error}"))
        return checks, None
    expected = report_data(nonce, measured)
    claimed = str(body.get("report_data") or "")
    checks.append(
        Check("report-data", PASS, f"SHA-512 of {body.get('layout')} layout recomputed")
        if claimed == expected.hex()
        else Check("report-data", FAIL, "report_data does not match nonce + measurements")
    )
    try:
        in_quote = quote_report_data(quote)
    except QuoteFormatError as error:
        checks.append(Check("quote-binding", FAIL, str(error)))
        return checks, quote
    checks.append(
        Check("quote-binding", PASS, "the quote's REPORTDATA commits to nonce + measurements")
        if in_quote == expected
        else Check("quote-binding", FAIL, "the quote's REPORTDATA is not ours (replayed/altered)")
    )
    return checks, quote


def check_digest(name: str, reported: str, expected: str | None, source: str) -> Check:
    if expected is None:
        return Check(name, SKIP, f"no {source} given")
    if reported == expected:
        return Check(name, PASS, f"{reported} matches {source}")
    return Check(name, FAIL, f"server reports {reported or '(none)'}, {source} is {expected}")


def check_dcap(quote: bytes, pccs_url: str | None) -> Check:
    try:
        import dcap_qvl  # type: ignore[import-not-found]
    except ImportError:
        return Check(
            "dcap",
            SKIP,
            "no DCAP verification library (pip install dcap-qvl): the quote's signature, "
            "TCB status, MRTD and RTMRs were NOT verified",
        )
    try:
        args = (quote, pccs_url) if pccs_url else (quote,)
        result = dcap_qvl.get_collateral_and_verify(*args)
        if inspect.isawaitable(result):
            result = asyncio.run(result)
    except Exception as error:
        return Check("dcap", FAIL, f"dcap_qvl: {type(error).__name__}: {error}")
    return Check("dcap", PASS, f"dcap_qvl verified the quote; TCB status {result.status}")


def run(args: argparse.Namespace) -> tuple[int, list[Check], dict]:
    nonce = bytes.fromhex(args.nonce) if args.nonce else secrets.token_bytes(32)
    try:
        status, body = fetch(args.url, nonce, args.timeout)
    except (urllib.error.URLError, OSError, ValueError) as error:
        return 2, [Check("evidence", FAIL, f"no answer from {args.url}: {error}")], {}
    if status != 200:
        error = body.get("error") or {}
        not_tee = error.get("code") == "not_in_tee"
        detail = f"HTTP {status}: {error.get('message') or body}"
        return (3 if not_tee else 2), [Check("evidence", FAIL, detail)], body
    checks = [Check("evidence", PASS, f"quote from provider {body.get('provider')!r}")]
    binding, quote = check_binding(nonce, body)
    checks += binding
    m = body.get("measurements") or {}
    local = None
    if args.model_dir:
        local, _files = model_digest(Path(args.model_dir))
    expected_model = local or args.expect_model_digest
    source = "--model-dir" if local else "--expect-model-digest"
    checks.append(check_digest("model-digest", m.get("model_digest", ""), expected_model, source))
    checks.append(
        check_digest(
            "image-digest",
            m.get("image_digest", ""),
            args.expect_image_digest,
            "--expect-image-digest",
        )
    )
    if quote is not None and not any(c.result == FAIL for c in checks):
        checks.append(check_dcap(quote, args.pccs_url))
    else:
        checks.append(Check("dcap", SKIP, "skipped: an earlier check failed"))
    failed = any(c.result == FAIL for c in checks)
    unverified = args.require_dcap and checks[-1].result != PASS
    return (1 if failed or unverified else 0), checks, body


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="t2i-verify", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("url", help="server base URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--nonce", help="hex nonce to send (default: 32 random bytes)")
    parser.add_argument("--model-dir", help="local copy of the model to recompute its digest")
    parser.add_argument("--expect-model-digest", help="sha256:… the model digest must equal")
    parser.add_argument("--expect-image-digest", help="the image digest the server must report")
    parser.add_argument("--pccs-url", help="PCCS for dcap_qvl collateral (its default if unset)")
    parser.add_argument("--require-dcap", action="store_true", help="fail if dcap cannot run")
    parser.add_argument("--quote-out", help="write the raw quote here (for other verifiers)")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.nonce:
        try:
            if not 16 <= len(bytes.fromhex(args.nonce)) <= 64:
                parser.error("--nonce must be 16 to 64 bytes of hex")
        except ValueError:
            parser.error("--nonce must be hexadecimal")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        code, checks, body = run(args)
    except OSError as error:  # --model-dir unreadable
        print(f"t2i-verify: {error}", file=sys.stderr)
        return 2
    if args.quote_out and body.get("quote"):
        Path(args.quote_out).write_bytes(base64.b64decode(body["quote"]))
    if args.json:
        print(
            json.dumps(
                {
                    "exit": code,
                    "checks": [c.__dict__ for c in checks],
                    "measurements": body.get("measurements"),
                    "provider": body.get("provider"),
                }
            )
        )
    else:
        for c in checks:
            print(f"{c.name:14} {c.result:8} {c.detail}")
        verdict = {0: "binding verified", 1: "NOT verified", 2: "error", 3: "server is not in a TD"}
        print(f"result: {verdict[code]}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
