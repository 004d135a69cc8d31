"""The authenticated caller, and the JWT callbacks that answer in the contract's shape."""

from __future__ import annotations

from flask import g
from flask_jwt_extended import get_jwt, jwt_required
from structlog.contextvars import bind_contextvars

from web.errors import error_response
from web.openapi import BEARER, REFRESH, documented_security
from web.services import services


def current_user_id() -> int:
    return int(get_jwt()["sub"])


def token_required(refresh: bool = False):
    """``flask_jwt_extended.jwt_required``, declared as the operation's security
    requirement in the OpenAPI document too.

    Args:
        refresh: the view takes a refresh token instead of an access token.
    """

    def decorate(view):
        return documented_security(jwt_required(refresh=refresh)(view), REFRESH if refresh else BEARER)

    return decorate


def install(jwt) -> None:
    @jwt.token_in_blocklist_loader
    def is_revoked(_header, payload) -> bool:
        """Also reads whether the caller is banned, in the same round trip, for
        ``web.banned.refuse_banned`` (which answers after the rate limit, as before); and
        binds the caller's ``user_id`` to the request's log lines (every verified token,
        the API's and the dashboard's, passes here)."""
        bind_contextvars(user_id=payload.get("sub"))
        s = services()
        names = [s.keys.revoked(payload["jti"])]
        if payload.get("sid"):
            names.append(s.keys.revoked_session(payload["sid"]))
        with s.redis.pipeline(transaction=False) as pipe:
            pipe.exists(*names)
            pipe.sismember(s.keys.banned, payload["sub"])
            revoked, banned = pipe.execute()
        g.caller_banned = bool(banned)
        return revoked > 0

    @jwt.unauthorized_loader
    def missing(reason):
        return error_response(401, "missing_token", "An access token is required (Authorization: Bearer <jwt>).")

    @jwt.invalid_token_loader
    def invalid(reason):
        return error_response(401, "invalid_token", "The access token is not valid.")

    @jwt.expired_token_loader
    def expired(_header, _payload):
        return error_response(401, "token_expired", "The access token has expired; refresh it or log in again.")

    @jwt.revoked_token_loader
    def revoked(_header, _payload):
        return error_response(401, "token_revoked", "The access token was revoked; log in again.")

    @jwt.needs_fresh_token_loader
    def not_fresh(_header, _payload):
        return error_response(401, "invalid_token", "A fresh access token is required.")

    @jwt.user_lookup_error_loader
    def lookup_error(_header, _payload):
        return error_response(401, "invalid_token", "The access token's user is unknown.")
