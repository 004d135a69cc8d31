"""Who is watching: the access token of a stream request, checked like the API checks it.

A browser's ``EventSource`` cannot set headers, so besides ``Authorization: Bearer`` the
token may come as the ``access_token`` query parameter or cookie (in that order). A
request with none of them is an anonymous viewer (the board alone); a token that is
present but not valid is refused all the same. The token is decoded here with PyJWT (same key and algorithm as flask-jwt-extended uses to
sign it), so the stream process needs neither the API's extensions nor PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from scoreboard.settings import Settings
from web import claims as token_claims


class StreamRefused(Exception):
    """The stream cannot be opened; ``status`` and ``code`` as the contract says."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


MISSING = StreamRefused(401, "missing_token", "An access token is required (Authorization: Bearer <jwt>, "
                                             "or the access_token query parameter or cookie).")


def invalid() -> StreamRefused:
    return StreamRefused(401, "invalid_token", "The access token is not valid.")


def expired() -> StreamRefused:
    return StreamRefused(401, "token_expired", "The access token has expired; refresh it or log in again.")


def revoked() -> StreamRefused:
    return StreamRefused(401, "token_revoked", "The access token was revoked; log in again.")


def banned() -> StreamRefused:
    return StreamRefused(403, "user_banned", "This account is banned.")


@dataclass(frozen=True)
class Identity:
    """The claims of a valid access token that the stream uses."""

    user_id: int
    jti: str
    sid: str | None
    expires_at: float


def token_of(headers, args, cookies) -> str | None:
    """The raw token of a request; None when it has none at all (an anonymous viewer).

    Raises:
        StreamRefused: an ``Authorization`` header that is not a Bearer token (``missing_token``).
    """
    header = headers.get("Authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise MISSING
        return value.strip()
    return args.get("access_token") or cookies.get("access_token") or None


def decode(token: str, settings: Settings) -> Identity:
    """Check an access token's signature, expiry and type.

    Raises:
        StreamRefused: ``token_expired`` or ``invalid_token``.
    """
    try:
        claims = jwt.decode(token, settings.jwt_secret_key, algorithms=["HS256"],
                            options={"require": ["exp", "sub", "jti"]})
    except jwt.ExpiredSignatureError:
        raise expired() from None
    except jwt.InvalidTokenError:
        raise invalid() from None
    if claims.get("type") != "access" or token_claims.problem(claims):
        raise invalid()
    sid = claims.get("sid")
    return Identity(int(claims["sub"]), claims["jti"], sid or None, float(claims["exp"]))
