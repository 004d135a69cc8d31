"""gunicorn's own refusals in the contract's error shape, not HTML.

gunicorn answers some requests itself, before the application sees them: a request line
longer than ``limit_request_line`` (414), more headers than ``limit_request_fields`` or
one longer than ``limit_request_field_size`` (431), a malformed request line, method,
version, header or chunked framing (400), a transfer coding it does not support (501).
It writes those answers with ``gunicorn.util.write_error``, as an HTML page; ``install``
(called by the gunicorn config in the master, so every worker it forks has it) puts
``write_error`` here in its place, which writes ``{"error": {"code", "message"}}``.

Loads nothing but the standard library and gunicorn: the master must not import the app.
"""

from __future__ import annotations

import json

from gunicorn import util

# code and message of each status gunicorn answers by itself
REFUSALS = {
    400: ("malformed_request", "The request is not valid HTTP."),
    403: ("forbidden", "You may not do this."),
    414: ("uri_too_long", "The request line is too long."),
    417: ("expectation_failed", "This Expect header cannot be met."),
    431: ("headers_too_large", "The request headers are too large or too many."),
    500: ("internal_error", "Something went wrong on our side."),
    501: ("not_implemented", "This transfer coding is not supported."),
}
HEADERS = (
    "Connection: close",
    "Content-Type: application/json",
    "X-Content-Type-Options: nosniff",
    "Cache-Control: no-store",
    "Content-Security-Policy: default-src 'none'; frame-ancestors 'none'",
)


def response(status: int, reason: str) -> bytes:
    """The whole HTTP response gunicorn sends for a refusal with ``status``."""
    code, message = REFUSALS.get(status, (f"http_{status}", reason))
    body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
    head = "\r\n".join([f"HTTP/1.1 {status} {reason}", *HEADERS, f"Content-Length: {len(body)}", "", ""])
    return head.encode("latin-1") + body


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error``'s replacement (``mesg``, gunicorn's detail, often
    the client's own bytes, goes to gunicorn's log, not back to the client)."""
    util.write_nonblock(sock, response(status_int, reason))


def install() -> None:
    """Make gunicorn answer its own refusals in JSON (in this process and those it forks)."""
    util.write_error = write_error
