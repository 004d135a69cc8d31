"""Security headers on every response, CORS for the browser clients.

- JSON and every other non-HTML answer: ``Content-Security-Policy: default-src 'none'``
  (nothing in it may load or run anything), ``frame-ancestors 'none'``.
- HTML pages: scripts only from this origin or inline blocks whose SHA-256 hash is in
  the policy (computed from the page itself, so no ``'unsafe-inline'``); a page's view may
  relax it through ``g.csp_relax`` (the RQ dashboard does).
- ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy:
  no-referrer``, ``Cross-Origin-Opener-Policy: same-origin`` everywhere, and
  ``Cache-Control: no-store`` unless the view set its own;
  ``Strict-Transport-Security`` when ``HSTS_MAX_AGE`` > 0 (the production default).
- CORS on ``/api/`` for the origins in ``CORS_ORIGINS`` only (exact match, or ``*``);
  no credentials: the API takes Bearer tokens, not cookies. flask-cors does it.

The headers are set here, not by Flask-Talisman (1.1.0, the maintained fork), because it
does not do the same job as well: it sets one Content-Security-Policy per view, where this
service needs one by kind of answer (``default-src 'none'`` for JSON, a page policy for
HTML) and views it does not own (the RQ dashboard's, relaxed per request); it cannot allow a
page's inline scripts by their hashes (only by nonces, which a static page cannot carry);
it sends no ``Cache-Control`` or ``Cross-Origin-Opener-Policy``, and HSTS only on requests it
sees as HTTPS; it overwrites what a view set instead of filling in what is missing; and
its ``force_https`` redirect and session-cookie settings would have to be turned off. The
cached board (``web.board.cached``), answered before Flask, takes the same headers from
``common_headers``.
"""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Flask, Response, g
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from scoreboard.settings import Settings

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PAGE_CSP = {
    "default-src": ("'self'",),
    "script-src": ("'self'",),
    "style-src": ("'self'",),
    "img-src": ("'self'", "data:"),
    "connect-src": ("'self'",),
    "object-src": ("'none'",),
    "base-uri": ("'none'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}
CORS_METHODS = ["GET", "POST", "OPTIONS"]
CORS_HEADERS = ["Authorization", "Content-Type", "Prefer", "X-Request-ID", "Last-Event-ID"]
CORS_EXPOSE = ["Retry-After", "X-Request-ID", "Location", "X-RateLimit-Limit", "X-RateLimit-Remaining",
               "X-RateLimit-Reset"]
CORS_MAX_AGE = 600

_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", re.IGNORECASE | re.DOTALL)
_TYPE = re.compile(rb"""\btype\s*=\s*["']?([^"'\s>]*)""", re.IGNORECASE)
_SCRIPT_TYPES = {b"", b"text/javascript", b"application/javascript", b"module"}


def inline_script_hashes(html: bytes) -> list[str]:
    """CSP source expressions (``'sha256-…'``) of the inline scripts a browser would run."""
    hashes = []
    for attributes, body in _INLINE_SCRIPT.findall(html):
        kind = _TYPE.search(attributes)
        if kind and kind.group(1).lower() not in _SCRIPT_TYPES:
            continue  # e.g. type="text/template": data, never run
        hashes.append("'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'")
    return hashes


def page_policy(html: bytes, relax: dict | None = None) -> str:
    """The Content-Security-Policy of one HTML page."""
    policy = {name: list(sources) for name, sources in PAGE_CSP.items()}
    policy["script-src"] += inline_script_hashes(html)
    for name, sources in (relax or {}).items():
        policy.setdefault(name, []).extend(sources)
    return "; ".join(f"{name} {' '.join(dict.fromkeys(sources))}" for name, sources in policy.items())


def common_headers(settings: Settings) -> list[tuple[str, str]]:
    """The headers every response carries unless its view set them otherwise (the
    Content-Security-Policy aside, which depends on the body)."""
    headers = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cache-Control", "no-store"),
    ]
    if settings.http.hsts_max_age:
        headers.append(("Strict-Transport-Security", f"max-age={settings.http.hsts_max_age}; includeSubDomains"))
    return headers


def _security_headers(settings: Settings):
    common = common_headers(settings)

    def add(response: Response) -> Response:
        headers = response.headers
        for name, value in common:
            headers.setdefault(name, value)
        if "Content-Security-Policy" not in headers:
            if response.mimetype == "text/html" and not response.is_streamed and not response.direct_passthrough:
                headers["Content-Security-Policy"] = page_policy(response.get_data(), g.get("csp_relax"))
            else:
                headers["Content-Security-Policy"] = API_CSP
        return response

    return add


def _cors(app: Flask, origins: tuple[str, ...]) -> None:
    """flask-cors on ``/api/`` for ``origins``: each matched exactly (flask-cors would read
    one with ``[`` or ``?`` in it, an IPv6 host say, as a pattern), or ``*`` for any."""
    CORS(
        app,
        resources=[r"/api/.*"],
        origins=["*"] if "*" in origins else [re.compile(re.escape(o) + r"\Z", re.IGNORECASE) for o in origins],
        send_wildcard=True,  # "*" as such, not the caller's origin echoed
        always_send=False,  # only to a request that names its origin
        supports_credentials=False,
        methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_EXPOSE,
        max_age=CORS_MAX_AGE,
    )


def install(app: Flask, settings: Settings) -> None:
    """Add the headers and CORS to every response of ``app``."""
    install_headers(app, settings)
    if settings.http.cors_origins:
        _cors(app, settings.http.cors_origins)


def install_headers(app: Flask, settings: Settings) -> None:
    """The security headers alone (the stream process: it reads no bodies and answers its own CORS)."""
    app.after_request(_security_headers(settings))


def trust_proxies(app: Flask, settings: Settings) -> None:
    """Believe ``X-Forwarded-For``/``-Proto``/``-Host`` from ``TRUSTED_PROXIES`` proxies (the
    client address of rate limits and of the stream's per-address cap); call it last."""
    if settings.http.trusted_proxies:
        n = settings.http.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
