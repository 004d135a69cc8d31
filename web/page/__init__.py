"""The web page: ``GET /`` and its static files (plain HTML, CSS and JavaScript).

The page opens the live stream at ``STREAM_URL`` when it is set (the stream processes'
public URL, another origin: the token travels as the ``access_token`` query parameter,
and the stream answers with ``Access-Control-Allow-Origin: *``), else at
``/api/scoreboard/stream`` on its own origin, which the API process also serves.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response

from web.services import services

STATIC = Path(__file__).resolve().parent.parent / "static"
DEFAULT_STREAM_PATH = "/api/scoreboard/stream"

blp = Blueprint("page", __name__, static_folder=str(STATIC), static_url_path="/static")


@lru_cache(maxsize=1)
def _template() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


def content_security_policy(stream_url: str) -> str:
    """Only this origin (and the stream's, when it has its own) may serve scripts and data."""
    parts = urlsplit(stream_url)
    stream_origin = f" {parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'{stream_origin}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@blp.get("/")
def index():
    """The live board page."""
    stream_url = services().settings.stream.url or DEFAULT_STREAM_PATH
    response = Response(_template().replace("__STREAM_URL__", escape(stream_url, quote=True)), mimetype="text/html")
    response.headers["Content-Security-Policy"] = content_security_policy(stream_url)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
