"""Who may use the admin API and the RQ dashboard.

The admin role is checked against PostgreSQL on every admin request, not taken from a
claim in the JWT: admin calls are few, one indexed lookup each is cheap, and so
``revoke-admin`` (or a ban) takes effect at the very next request instead of when the
access token expires.

The API takes the access token as ``Authorization: Bearer``. A browser cannot send that
header to the dashboard's pages, so ``POST /api/admin/session`` (an admin's Bearer token)
sets an HttpOnly, SameSite=Strict cookie limited to ``/admin/`` holding a new refresh
token of the same login session, and a readable ``_csrf_token`` cookie that the
dashboard's JavaScript sends back as ``X-CSRFToken``. The dashboard session so lasts as
long as the login session (it does not end with the access token an hour later): logout
revokes it with the session, and the role (and a ban) is read from PostgreSQL at every
request as for the API. A request authenticated by the cookie that changes anything
(POST) must carry that header, bound to the login session by an HMAC, else 403
``csrf_failed``. Requests with a Bearer header need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import wraps

from flask import current_app, g, request
from flask_jwt_extended import decode_token, get_jwt, verify_jwt_in_request
from flask_jwt_extended.exceptions import NoAuthorizationError
from flask_jwt_extended.internal_utils import verify_token_not_blocklisted, verify_token_type
from sqlalchemy import text

from scoreboard.errors import Refused
from web.openapi import documented_security
from web.services import services

SESSION_COOKIE = "sb_admin_session"
CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "X-CSRFToken"
COOKIE_PATH = "/admin/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def require_admin(user_id: int) -> int:
    """The user id when that user is an admin (and not banned) in PostgreSQL.

    Raises:
        Refused: ``forbidden`` for anyone else.
    """
    with services().engine.connect() as conn:
        allowed = conn.execute(
            text("SELECT is_admin AND NOT banned FROM users WHERE id = :id"), {"id": user_id}
        ).scalar()
    if not allowed:
        raise Refused("forbidden", "This is for admins only.")
    g.admin_id = user_id
    return user_id


def admin_required(view):
    """Decorator: a valid access token (else 401 with the contract's token codes) of an admin
    (else 403); declared as the operation's security requirement in the OpenAPI document."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        verify_jwt_in_request()
        require_admin(int(get_jwt()["sub"]))
        return view(*args, **kwargs)

    return documented_security(wrapper)


def csrf_token(claims: dict) -> str:
    """The CSRF token of the dashboard session of a token with these claims (bound to its
    login session, ``sid``, else to the token itself)."""
    key = current_app.config["SECRET_KEY"].encode()
    bound = f"sid:{claims['sid']}" if claims.get("sid") else claims["jti"]
    return hmac.new(key, f"rq-dashboard-csrf:{bound}".encode(), hashlib.sha256).hexdigest()


def dashboard_admin(changes_state: bool) -> int:
    """Authenticate a dashboard request by Bearer header or session cookie; return the admin's id.

    Args:
        changes_state: the request changes something, so a cookie session needs its CSRF token.

    Raises:
        NoAuthorizationError, InvalidTokenError, ExpiredSignatureError, RevokedTokenError:
            answered 401 by the JWT callbacks.
        Refused: ``csrf_failed`` or ``forbidden`` (403).
    """
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token.strip():
            raise NoAuthorizationError("Expected Authorization: Bearer <jwt>")
    else:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise NoAuthorizationError("Missing the admin session cookie")
    claims = decode_token(token.strip())
    verify_token_type(claims, refresh=not header)  # the cookie holds the session's refresh token
    verify_token_not_blocklisted({}, claims)
    if not header and changes_state:
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), csrf_token(claims).encode()):
            raise Refused("csrf_failed", "The X-CSRFToken header is missing or wrong.")
    return require_admin(int(claims["sub"]))


def set_session_cookies(response, token: str, claims: dict, max_age: int, secure: bool) -> None:
    """Put the dashboard session on ``response``: the HttpOnly refresh token and the CSRF token."""
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, path=COOKIE_PATH, secure=secure,
                        httponly=True, samesite="Strict")
    response.set_cookie(CSRF_COOKIE, csrf_token(claims), max_age=max_age, path=COOKIE_PATH, secure=secure,
                        httponly=False, samesite="Strict")

