"""The playground page at ``/`` and its two assets, from the package's ``ui/`` directory.

Only the three named files can be served (no path from the URL ever reaches the filesystem),
and every response carries a Content-Security-Policy that allows same-origin scripts, styles,
images and fetches only — no inline script, no third party, no framing.
"""

from __future__ import annotations

from importlib.resources import files

from flask import Blueprint, Response, abort

blueprint = Blueprint("playground", __name__)

_UI = files("inference_server") / "ui"
_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _asset(name: str) -> Response:
    if name not in _ASSETS:
        abort(404)
    return Response((_UI / name).read_bytes(), mimetype=None, content_type=_ASSETS[name])


@blueprint.get("/")
def index():
    return _asset("index.html")


@blueprint.get("/ui/<name>")
def asset(name: str):
    return _asset(name)


@blueprint.after_request
def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response
