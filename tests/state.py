"""Everything a refused request must leave as it was, in PostgreSQL and in Redis."""

from __future__ import annotations

from scoreboard.redis_client import Keys

# Redis keys that change without any request being applied: rate-limit counters (a
# refused request is counted, on purpose), the board cache and its version (refilled and
# started again by the periodic jobs and by reads), short locks (the periodic jobs' too),
# the periodic jobs' reports and leader lock, the marks set when a ranking is built, and
# the registry of open live streams (it follows connections, which end in their own time).
# (PostgreSQL's board_periods changes with the clock too: the closing job gives each period its row.)
_VOLATILE = ("board:", "b:held", "cron:", "ops:", "streams:")
# Of each board period's keys (``<prefix>b:<board>:<period>:<what>``), the caches, marks and locks.
_VOLATILE_BOARD = (b":top", b":top10", b":last10", b":ready", b":rebuild", b":fill", b":pages", b":closed")


def _redis_value(r, key: bytes):
    kind = r.type(key)
    if kind == b"string":
        return r.get(key)
    if kind == b"hash":
        return sorted(r.hgetall(key).items())
    if kind == b"list":
        return r.lrange(key, 0, -1)
    if kind == b"set":
        return sorted(r.smembers(key))
    if kind == b"zset":
        return r.zrange(key, 0, -1, withscores=True)
    if kind == b"stream":
        return [entry_id for entry_id, _ in r.xrange(key)]
    return kind


def snapshot(db, r, prefix: str) -> dict:
    """Every row of the service's tables, every service key in Redis and the apply jobs."""
    state = {}
    with db.cursor() as cur:
        for table, order in (("users", "id"), ("score_history", "id"), ("action_tokens", "token"),
                             ("score_flags", "id"), ("board_scores", "board, period, user_id")):
            cur.execute(f"SELECT * FROM {table} ORDER BY {order}")
            state[table] = cur.fetchall()
    keys = Keys(prefix)
    skip = tuple(f"{prefix}{name}".encode() for name in _VOLATILE) + (keys.ratelimit_prefix.encode(),)
    for key in sorted(r.scan_iter(match=f"{prefix}*", count=1000)):
        if not key.startswith(skip) and not key.endswith(_VOLATILE_BOARD):
            state[key] = _redis_value(r, key)
    state["apply jobs"] = sorted(r.scan_iter(match="rq:job:apply-*", count=1000))
    return state


def diff(before: dict, after: dict) -> dict:
    """What changed between two snapshots (for assertion messages)."""
    changed = {}
    for key in set(before) | set(after):
        if before.get(key) != after.get(key):
            changed[key] = (before.get(key), after.get(key))
    return changed
