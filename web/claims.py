"""What every JWT this service signs holds, checked wherever one is decoded.

The signature proves who made a token, not that it has the shape the code relies on: a
token signed with the real key but without ``exp`` would never expire, and one whose
subject is not a user id would fail deep inside a view. The API
(``web.verified_tokens``) and the stream (``web.stream.auth``) both hold their decoded
claims to ``problem`` and refuse the token (401 ``invalid_token``) when it names one.
Loads nothing but the standard library, so the stream process can use it.
"""

from __future__ import annotations

import re

# A user id: a positive bigint in plain ASCII digits (``int()`` would also take " 7",
# "7_0" and other scripts' digits).
_USER_ID = re.compile(r"[1-9][0-9]{0,18}")
_MAX_USER_ID = 2**63 - 1


def problem(claims: dict) -> str | None:
    """What is wrong with the claims of a token whose signature is good; None when nothing.

    Args:
        claims: the decoded payload.

    Returns:
        a short reason for the logs, or None when the token has every claim it must.
    """
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return "exp missing or not a number"
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _USER_ID.fullmatch(sub) or int(sub) > _MAX_USER_ID:
        return "sub is not a user id"
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        return "jti missing"
    sid = claims.get("sid")
    if sid is not None and not isinstance(sid, str):
        return "sid is not a string"
    return None
