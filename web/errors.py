"""Every error in the contract's shape: ``{"error": {"code", "message"[, "fields"]}}``.

Shared by the API and the stream process, so it loads nothing but Flask and redis-py:
the API passes what else counts as a lost backing service (SQLAlchemy's errors) and how
to tell when a rate limit resets (Flask-Limiter's) to ``install``.
"""

from __future__ import annotations

import logging
from typing import Callable

import redis
from flask import Response, current_app, g, has_app_context, has_request_context
from werkzeug.exceptions import HTTPException

from scoreboard.errors import Refused, Unavailable
from web.responses import json_response

log = logging.getLogger(__name__)

# Status of each domain error code.
STATUS = {
    "username_taken": 409,
    "invalid_request": 422,
    "invalid_credentials": 401,
    "unknown_action_type": 422,
    "token_unknown": 403,
    "token_used": 403,
    "bad_signature": 403,
    "token_expired": 403,
    "invalid_score": 422,
    "user_banned": 403,
    "forbidden": 403,
    "not_found": 404,
    "csrf_failed": 403,
    "flag_resolved": 409,
    "cannot_ban_self": 409,
    "period_overlap": 409,
    "unknown_board": 404,
    "unknown_period": 404,
    "invalid_cursor": 400,
    "unavailable": 503,
    "malformed_request": 400,
    "client_disconnected": 400,  # nobody reads it: the client is gone (web.bodies)
}

# Code of each HTTP error raised outside the domain (routing, parsing, limits).
HTTP_CODES = {
    400: ("malformed_json", "The request body is not valid JSON."),
    401: ("missing_token", "Authentication is required."),
    403: ("forbidden", "You may not do this."),
    404: ("not_found", "There is nothing here."),
    405: ("method_not_allowed", "This method is not allowed here."),
    408: ("request_timeout", "The request body took too long to arrive."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Send the body as application/json."),
    422: ("invalid_request", "The request body does not match the schema."),
    429: ("rate_limited", "Too many requests; slow down."),
    500: ("internal_error", "Something went wrong on our side."),
    503: ("unavailable", "The service is briefly unavailable; try again shortly."),
}


def error_response(status: int, code: str, message: str, fields: dict | None = None, headers=None,
                   details: dict | None = None) -> Response:
    body = {"code": code, "message": message, **(details or {})}
    if has_request_context():
        g.error_code = code  # for the metrics and the security log (web.metrics.observe)
    if fields:
        body["fields"] = fields
    response = json_response({"error": body}, status)
    if headers:
        for name, value in headers:
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
    return response


def from_refused(exc: Refused) -> Response:
    response = error_response(STATUS.get(exc.code, 400), exc.code, exc.message, details=exc.details)
    if exc.code == "unavailable":
        response.headers["Retry-After"] = "1"
    return response


def from_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code, message = HTTP_CODES.get(status, (f"http_{status}", exc.description or "HTTP error"))
    fields = None
    data = getattr(exc, "data", None)
    if status == 422 and data and "messages" in data:
        fields = _flatten(data["messages"])
    headers = exc.get_response().headers if hasattr(exc, "get_response") else None
    if status == 429:
        retry_after = getattr(exc, "retry_after", None) or _hooks().retry_after()
        headers = [(k, v) for k, v in (headers or []) if k.lower() != "retry-after"]
        if retry_after is not None:
            headers.append(("Retry-After", str(retry_after)))
    return error_response(status, code, message, fields, headers)


class _Hooks:
    """What ``install`` was told about the app: its lost-service errors and its limits."""

    def __init__(self, unavailable: tuple[type[BaseException], ...], retry_after: Callable[[], int | None]):
        self.unavailable = (redis.ConnectionError, redis.TimeoutError, Unavailable, *unavailable)
        self.retry_after = retry_after


_NO_HOOKS = _Hooks((), lambda: None)


def _hooks() -> _Hooks:
    return current_app.extensions.get("error_hooks", _NO_HOOKS) if has_app_context() else _NO_HOOKS


def _flatten(messages: dict) -> dict:
    """webargs nests errors by location ({"json": {...}}); clients want the fields."""
    if set(messages) <= {"json", "query", "headers", "form", "files", "view_args", "path"}:
        merged = {}
        for value in messages.values():
            if isinstance(value, dict):
                merged.update(value)
            else:
                merged["_schema"] = value
        return merged
    return messages


def from_unexpected(exc: Exception) -> Response:
    if isinstance(exc, _hooks().unavailable):
        log.warning("backing service unavailable", extra={"error": repr(exc)})
        response = error_response(503, *HTTP_CODES[503])
        response.headers["Retry-After"] = "1"
        return response
    log.exception("unhandled error")
    return error_response(500, *HTTP_CODES[500])


def install(app, unavailable: tuple[type[BaseException], ...] = (),
            retry_after: Callable[[], int | None] = lambda: None) -> None:
    """Answer every error of ``app`` in the contract's shape.

    Args:
        unavailable: exception types that mean a backing service is lost (503 with
            ``Retry-After``), besides Redis's own connection errors.
        retry_after: seconds until the breached rate limit resets, for a 429 whose
            exception does not say (None: no ``Retry-After``).
    """
    app.extensions["error_hooks"] = _Hooks(unavailable, retry_after)
    app.register_error_handler(Refused, from_refused)
    app.register_error_handler(HTTPException, from_http_exception)
    app.register_error_handler(Exception, from_unexpected)
