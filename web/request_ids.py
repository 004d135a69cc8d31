"""The request id: the caller's ``X-Request-ID`` when it is made of safe characters only,
else a fresh one; bound to every log line of the request and echoed in the response.

Only ``[A-Za-z0-9._-]``, 1 to 64 of them, are taken from the caller: the id is stored with
the submission and in the apply job's RQ metadata, where admin tools show it, so it must
never carry markup or anything else a page could read as more than a name.
"""

from __future__ import annotations

import re
import secrets

from flask import Flask, g, request
from structlog.contextvars import bind_contextvars, clear_contextvars

MAX_LENGTH = 64
_SAFE = re.compile(r"[A-Za-z0-9._-]{1,%d}" % MAX_LENGTH)


def from_header(incoming: str) -> str:
    """The id of a request whose ``X-Request-ID`` header is ``incoming`` ("" when absent)."""
    return incoming if _SAFE.fullmatch(incoming) else secrets.token_hex(8)


def install(app: Flask) -> None:
    """Give every request of ``app`` its id (``g.request_id``), in its logs and its response.

    Its hook runs before every other one, so even a request refused by an earlier hook
    (the dashboard's admin check) has its id in its log lines and its response.
    """

    def _request_id():
        g.request_id = from_header(request.headers.get("X-Request-ID", ""))
        clear_contextvars()  # a connection's next request starts clean
        bind_contextvars(request_id=g.request_id)

    app.before_request_funcs.setdefault(None, []).insert(0, _request_id)

    @app.teardown_request
    def _unbind(_exc):
        clear_contextvars()

    @app.after_request
    def _echo(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response
