"""Action tokens: one action, one token, one use (seed flow 4).

A token lives in Redis with its own secret; the client signs the result with that
secret. The web checks everything here at once; the worker makes the single use
authoritative in PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import redis

from scoreboard.action_types import ActionType
from scoreboard.errors import Refused
from scoreboard.redis_client import Keys
from scoreboard.settings import Settings

# How long a token's record outlives the token, so that a late submission hears
# "expired" rather than "unknown".
EXPIRED_GRACE_S = 60


@dataclass(frozen=True)
class ActionToken:
    token: str
    secret: str
    user_id: int
    action_type: str
    issued_at: int
    expires_at: int
    used: bool


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def issue(r: redis.Redis, keys: Keys, settings: Settings, user_id: int, action_type: ActionType) -> ActionToken:
    """Create and store a new action token for ``user_id``."""
    token = secrets.token_urlsafe(24)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    issued = now_ms()
    record = ActionToken(
        token=token,
        secret=secret,
        user_id=user_id,
        action_type=action_type.name,
        issued_at=issued,
        expires_at=issued + settings.actions.token_ttl * 1000,
        used=False,
    )
    key = keys.action_token(token)
    pipe = r.pipeline(transaction=True)
    pipe.hset(
        key,
        mapping={
            "secret": secret,
            "user_id": user_id,
            "action_type": record.action_type,
            "issued_at": issued,
            "expires_at": record.expires_at,
            "used": 0,
        },
    )
    pipe.expire(key, settings.actions.token_ttl + settings.actions.clock_skew + EXPIRED_GRACE_S)
    pipe.execute()
    return record


def load(r: redis.Redis, keys: Keys, token: str) -> ActionToken | None:
    raw = r.hgetall(keys.action_token(token))
    if not raw:
        return None
    return ActionToken(
        token=token,
        secret=raw[b"secret"].decode(),
        user_id=int(raw[b"user_id"]),
        action_type=raw[b"action_type"].decode(),
        issued_at=int(raw[b"issued_at"]),
        expires_at=int(raw[b"expires_at"]),
        used=raw[b"used"] != b"0",
    )


def signature(secret: str, token: str, score_delta: int, completed_at: int) -> str:
    """The hex HMAC-SHA256 a client sends (the contract's formula)."""
    key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    return hmac.new(key, f"{token}.{score_delta}.{completed_at}".encode(), hashlib.sha256).hexdigest()


def check_submission(
    record: ActionToken | None,
    user_id: int,
    score_delta: int,
    completed_at: int,
    given_signature: str,
    action_types: dict[str, ActionType],
    clock_skew_s: int,
    now: int | None = None,
) -> ActionType:
    """Run the contract's token checks in its order; return the token's action type.

    Raises:
        Refused: ``token_unknown``, ``token_used``, ``bad_signature``, ``token_expired``
            or ``invalid_score``, the first that fails.
    """
    if record is None or record.user_id != user_id:
        raise Refused("token_unknown")
    if record.used:
        raise Refused("token_used")
    expected = signature(record.secret, record.token, score_delta, completed_at)
    if not hmac.compare_digest(expected, given_signature.lower()):
        raise Refused("bad_signature")
    now = now_ms() if now is None else now
    skew = clock_skew_s * 1000
    if (
        now > record.expires_at + skew
        or completed_at > now + skew
        or completed_at < record.issued_at - skew
        or completed_at > record.expires_at + skew
    ):
        raise Refused("token_expired")
    action_type = action_types.get(record.action_type)
    if action_type is None or not action_type.allows(score_delta):
        raise Refused("invalid_score")
    return action_type
