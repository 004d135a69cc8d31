"""The web pages: the live board at ``GET /`` (``/?display=1``: the big-screen view), the
admin room at ``GET /admin/``, and their static files (plain HTML, CSS and JavaScript
modules, no build step; ``web/static/vendor/`` holds the one library, with its licence).

The board opens the live stream at ``STREAM_URL`` when it is set (the stream processes'
public URL, maybe another origin), else at ``/api/scoreboard/stream`` on its own origin,
which the API process also serves. It reads the stream with ``fetch``, the access token in
the ``Authorization`` header (never in the URL, where access logs would keep it); a
cross-origin stream answers the CORS preflight that header needs.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, request

from web.services import services

STATIC = Path(__file__).resolve().parent.parent / "static"
DEFAULT_STREAM_PATH = "/api/scoreboard/stream"

blp = Blueprint("page", __name__, static_folder=str(STATIC), static_url_path="/static")


@lru_cache(maxsize=4)
def _template(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def content_security_policy(stream_url: str = "") -> str:
    """Only this origin (and the stream's, when it has its own) may serve scripts and data."""
    parts = urlsplit(stream_url)
    stream_origin = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'{stream_origin}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _page(html: str, stream_url: str = "") -> Response:
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = content_security_policy(stream_url)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@blp.get("/")
def index():
    """The live board page (``?display=1``: large type, no controls, for a screen at an event)."""
    stream_url = services().settings.stream.url or DEFAULT_STREAM_PATH
    mode = "display" if request.args.get("display", "") not in ("", "0", "false") else "page"
    html = _template("index.html").replace("__STREAM_URL__", escape(stream_url, quote=True)).replace("__MODE__", mode)
    return _page(html, stream_url)


@blp.get("/admin/")
def admin_room():
    """The admin room: flag review, bans, failed apply jobs, the way into the RQ dashboard.
    The page is public; everything it shows comes from the admin API, which checks the role."""
    return _page(_template("admin.html"))
