"""flask-jwt-extended's manager, remembering the access tokens it has already verified.

A client sends the same access token with every request, and verifying it (flask-jwt-extended
parses it three times with PyJWT, whose base64 checks go character by character, then checks
the HMAC) was the largest single cost of a submission. A token enters the cache only after a
full verification, keyed by its exact text, per app (each app has its own secret), and only
while it has not expired: ``exp`` is checked on every hit, and an expired token goes back
through PyJWT, which refuses it as before. The blocklist, type and user checks still run on
every request; they come after the decode.

Every decoded token is also held to ``web.claims.problem`` (an ``exp``, a user id as
subject, a ``jti``): a token signed with the real key that lacks one is refused as
invalid (401), never accepted for good nor a 500 in a view.
"""

from __future__ import annotations

import time

from flask import current_app
from flask_jwt_extended import JWTManager
from flask_jwt_extended.config import config
from flask_jwt_extended.exceptions import JWTDecodeError

from web import claims

CACHE_SIZE = 8192


class CachingJWTManager(JWTManager):
    def _decode_jwt_from_config(self, encoded_token: str, csrf_value=None, allow_expired: bool = False) -> dict:
        if csrf_value is not None or allow_expired:
            return self._decode_checked(encoded_token, csrf_value, allow_expired)
        cache = current_app.extensions.setdefault("verified_tokens", {})
        hit = cache.get(encoded_token)
        if hit is not None:
            if hit["exp"] > time.time() - config.leeway:
                return dict(hit)
            del cache[encoded_token]
        decoded = self._decode_checked(encoded_token, csrf_value, allow_expired)
        if len(cache) >= CACHE_SIZE:
            del cache[next(iter(cache))]  # the oldest entry
        cache[encoded_token] = dict(decoded)
        return decoded

    def _decode_checked(self, encoded_token: str, csrf_value, allow_expired: bool) -> dict:
        decoded = super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        reason = claims.problem(decoded)
        if reason:
            raise JWTDecodeError(reason)  # answered 401 invalid_token by web.identity
        return decoded
