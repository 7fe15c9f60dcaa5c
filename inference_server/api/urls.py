"""The base of every returned image URL, never taken from an untrusted Host header.

In order: ``--public-base-url`` when set; else, only with ``--trust-forwarded-headers``, a
well-formed ``X-Forwarded-Proto``/``X-Forwarded-Host`` pair (a proxy in front rewrites them);
else the address the client's TCP connection actually reached (``http://127.0.0.1:5000`` for the
tutorial's curl through ``kubectl port-forward``). A spoofed or malformed Host changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_DEFAULT_PORT = {"http": "80", "https": "443"}


def valid_public_base_url(value: str) -> str:
    """``http(s)://host[:port][/path]`` without query, fragment or credentials, without the
    trailing slash; ValueError naming what is wrong otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must start with http:// or https://, got {value!r}")
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"must be http(s)://host[:port][/path] only, got {value!r}")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ValueError(f"has an invalid port: {value!r}") from None
    return value.rstrip("/")


def _host(value: str) -> str | None:
    """``host[:port]`` if well-formed (DNS name, IPv4, or [IPv6]), else None."""
    host, _, port = value.rpartition(":") if not value.endswith("]") else (value, "", "")
    if not host:
        host, port = value, ""
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return None
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
    elif not _HOSTNAME.match(host):
        return None
    return value


def _authority(host: str, port: str, scheme: str) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port == _DEFAULT_PORT[scheme] else f"{host}:{port}"


def base_url(environ: dict, public_base_url: str, trust_forwarded: bool) -> str:
    if public_base_url:
        return public_base_url
    scheme = "http"
    if trust_forwarded:
        proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[0].strip().lower()
        forwarded_host = _host(environ.get("HTTP_X_FORWARDED_HOST", "").split(",")[0].strip())
        if proto in _DEFAULT_PORT:
            scheme = proto
        if forwarded_host:
            return f"{scheme}://{forwarded_host}"
    local = environ.get("t2i.local_addr")
    if local:
        host, port = str(local[0]), str(local[1])
    else:  # not under waitress (the test client): the WSGI server's own name, not Host
        host, port = environ.get("SERVER_NAME", "localhost"), environ.get("SERVER_PORT", "80")
    return f"{scheme}://{_authority(host, port, scheme)}"
