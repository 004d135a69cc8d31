"""The request id: the caller's ``X-Request-ID`` when it is sane, else a fresh one; bound
to every log line of the request and echoed in the response."""

from __future__ import annotations

import secrets

from flask import Flask, g, request

from scoreboard import logs

MAX_LENGTH = 64


def from_header(incoming: str) -> str:
    """The id of a request whose ``X-Request-ID`` header is ``incoming`` ("" when absent)."""
    return incoming if 0 < len(incoming) <= MAX_LENGTH and incoming.isprintable() else secrets.token_hex(8)


def install(app: Flask) -> None:
    """Give every request of ``app`` its id (``g.request_id``), in its logs and its response."""

    @app.before_request
    def _request_id():
        g.request_id = from_header(request.headers.get("X-Request-ID", ""))
        g._log_token = logs.bind(request_id=g.request_id)

    @app.teardown_request
    def _unbind_request_id(_exc):
        token = g.pop("_log_token", None)
        if token is not None:
            logs.unbind(token)

    @app.after_request
    def _echo(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response
