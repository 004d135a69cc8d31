"""Banned users are refused at the door: 403 ``user_banned`` before anything else is read.

The set of banned ids lives in Redis (written by the ban and unban calls right after
PostgreSQL, reloaded with the ranking after Redis lost it); the worker checks
``users.banned`` again inside its transaction, so a submission racing a ban is refused
there too.
"""

from __future__ import annotations

from functools import wraps

from flask import g

from scoreboard.errors import Refused
from web.identity import current_user_id
from web.services import services


def refuse_banned(view):
    """Decorator (under ``jwt_required``): 403 ``user_banned`` for a banned caller."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        banned = g.get("caller_banned")  # read with the blocklist (web/identity.py)
        if banned is None:
            s = services()
            banned = s.redis.sismember(s.keys.banned, current_user_id())
        if banned:
            raise Refused("user_banned")
        return view(*args, **kwargs)

    return wrapper
