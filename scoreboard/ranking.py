"""The board: the Redis ranking (derived from PostgreSQL), its cache, and its rebuild.

Equal scores are ordered by who reached them first, then by the higher user id, in
Redis (sorted set member order) and in PostgreSQL (``ORDER BY``) alike.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime

import orjson
import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from scoreboard import metrics
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts

log = logging.getLogger(__name__)

_EPOCH_SPAN_US = 10**16
BOARD_ORDER_SQL = "current_score DESC, score_reached_at ASC, id DESC"
REBUILD_CHUNK = 5000
# The PostgreSQL fallback: one request fills the cache; the others poll it briefly.
FILL_LOCK_MS = 5000
FILL_WAIT_S = 2.0
FILL_POLL_S = 0.02


def member(user_id: int, reached_at: datetime) -> str:
    """Sorted set member of a user: reverse lexical order = earlier first, then higher id."""
    reached_us = int(reached_at.timestamp() * 1_000_000)
    return f"{_EPOCH_SPAN_US - reached_us:016d}:{user_id:020d}"


def ranking_keys(keys: Keys) -> list[str]:
    return [keys.ranking, keys.ranking_seq, keys.ranking_member, keys.usernames]


def rebuild(engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, wait: float = 30.0) -> bool:
    """Load the ranking from PostgreSQL after Redis lost it; one process does it at a time.

    Safe alongside running batches: entries only move forward (history id order).

    Returns:
        True when the ranking is ready afterwards.
    """
    token = str(time.time())
    deadline = time.monotonic() + (FILL_WAIT_S if wait is None else wait)
    while not r.set(keys.rebuild_lock, token, nx=True, ex=120):
        if r.exists(keys.ranking_ready):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    try:
        if r.exists(keys.ranking_ready):
            return True
        started = time.monotonic()
        count = 0
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, max_row_buffer=REBUILD_CHUNK).execute(
                text(
                    "SELECT id, username, current_score, score_reached_at, last_history_id FROM users"
                    " WHERE score_reached_at IS NOT NULL AND NOT banned"
                )
            )
            for rows in result.partitions(REBUILD_CHUNK):
                args = []
                for row in rows:
                    args += [row.id, row.last_history_id, row.current_score, member(row.id, row.score_reached_at), row.username]
                scripts.rebuild(keys=ranking_keys(keys), args=args)
                count += len(rows)
            banned = [row[0] for row in conn.execute(text("SELECT id FROM users WHERE banned"))]
        if banned:
            r.sadd(keys.banned, *banned)
        r.set(keys.ranking_ready, 1)
        log.info("ranking rebuilt", extra={"users": count, "seconds": round(time.monotonic() - started, 3)})
        return True
    finally:
        if r.get(keys.rebuild_lock) == token.encode():
            r.delete(keys.rebuild_lock)


def board_keys(keys: Keys) -> list[str]:
    """KEYS of refresh.lua."""
    return [keys.ranking, keys.usernames, keys.ranking_ready, keys.board_version, keys.board_top, keys.board_top10]


def read_board(engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, limit: int, cache_ttl: int) -> bytes:
    """The body of ``GET /api/scoreboard`` for the top ``limit``, as JSON bytes (seed flow 5).

    From the cache when it is there; on a miss, refilled from the Redis ranking (one
    atomic script, so concurrent misses fill once); while the ranking is missing or
    being rebuilt, from PostgreSQL (``engine`` may be a replica), one request filling
    the cache for the others, so the answer is never a partial board.
    """
    body, source = _read(engine, r, scripts, keys, limit, cache_ttl)
    metrics.BOARD_READS.labels(source).inc()
    return body


def _read(engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, limit: int,
          cache_ttl: int) -> tuple[bytes, str]:
    cached = cached_board(r, keys, limit)
    if cached is not None:
        return cached, "cache"
    reply = scripts.refresh(keys=board_keys(keys), args=[cache_ttl, ""])
    if reply[0] == b"ok":
        return (reply[1] if limit == 10 else _slice(reply[2], limit)), ("ranking" if reply[3] == 1 else "cache")
    body, source = fill_from_database(engine, r, scripts, keys, cache_ttl)
    return _slice(body, limit), source


def cached_board(r: redis.Redis, keys: Keys, limit: int) -> bytes | None:
    """The body of the top ``limit`` from the board cache (one GET), or None on a miss."""
    cached = r.get(keys.board_top10 if limit == 10 else keys.board_top)
    if cached is None or limit == 10:
        return cached
    return _slice(cached, limit)


def fill_from_database(engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, cache_ttl: int,
                       wait: float | None = None) -> tuple[bytes, str]:
    """Read the top 100 from PostgreSQL and cache it, one caller at a time (single flight).

    The caller that takes the fill lock reads the board version (starting it again from
    the clock if Redis lost it, so it never goes back), reads PostgreSQL and caches the
    board for ``cache_ttl`` seconds unless a newer one was cached meanwhile;
    the others poll the cache for up to ``wait`` seconds (default ``FILL_WAIT_S``), then
    read PostgreSQL alone.

    Returns:
        (top 100 body, source): ``database``, ``cache_after_wait`` or ``database_uncached``.
    """
    owner = secrets.token_hex(8)
    if r.set(keys.board_fill_lock, owner, nx=True, px=FILL_LOCK_MS):
        try:
            # Version first, then the snapshot: a batch committed after the snapshot
            # publishes a higher version, so clients never see newer data labelled older.
            version = int(scripts.ensure_version(keys=[keys.board_version]))
            body = board_from_database(engine, r, keys, 100, version=version)
            board = orjson.loads(body)
            top10 = orjson.dumps({**board, "entries": board["entries"][:10]})
            pipe = r.pipeline(transaction=True)
            pipe.set(keys.board_top, body, ex=cache_ttl, nx=True)
            pipe.set(keys.board_top10, top10, ex=cache_ttl, nx=True)
            pipe.execute()
            return body, "database"
        finally:
            scripts.unlock(keys=[keys.board_fill_lock], args=[owner])
    deadline = time.monotonic() + (FILL_WAIT_S if wait is None else wait)
    while time.monotonic() < deadline:
        time.sleep(FILL_POLL_S)
        cached = r.get(keys.board_top)
        if cached is not None:
            return cached, "cache_after_wait"
    return board_from_database(engine, r, keys, 100), "database_uncached"


def _slice(body: bytes, limit: int) -> bytes:
    board = orjson.loads(body)
    if len(board["entries"]) <= limit:
        return body
    board["entries"] = board["entries"][:limit]
    return orjson.dumps(board)


def board_from_database(engine: Engine, r: redis.Redis, keys: Keys, limit: int, version: int | None = None) -> bytes:
    """Read the top ``limit`` from PostgreSQL (the fallback path).

    Args:
        version: the board version to label it with (default: the current one in Redis).
    """
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, username, current_score FROM users"
                " WHERE score_reached_at IS NOT NULL AND NOT banned"
                f" ORDER BY {BOARD_ORDER_SQL} LIMIT :limit"
            ),
            {"limit": limit},
        ).all()
    entries = []
    rank = 0
    previous = None
    for position, row in enumerate(rows, start=1):
        if row.current_score != previous:
            rank, previous = position, row.current_score
        entries.append({"rank": rank, "user_id": row.id, "username": row.username, "score": row.current_score})
    if version is None:
        version = int(r.get(keys.board_version) or 0)
    return orjson.dumps({"entries": entries, "version": version, "generated_at": time.time_ns() // 1_000_000})


def user_rank(r: redis.Redis, keys: Keys, user_id: int) -> int | None:
    """Competition rank of a user from the Redis ranking; None when not ranked."""
    entry = r.hget(keys.ranking_member, user_id)
    if entry is None:
        return None
    score = r.zscore(keys.ranking, entry)
    if score is None:
        return None
    return r.zcount(keys.ranking, f"({score}", "+inf") + 1


def rank_of(engine: Engine, r: redis.Redis, keys: Keys, user_id: int, score: int) -> int | None:
    """Competition rank of a user with ``score``: from Redis, or PostgreSQL while rebuilding."""
    if r.exists(keys.ranking_ready):
        rank = user_rank(r, keys, user_id)
        if rank is not None:
            return rank
    with engine.connect() as conn:
        higher = conn.execute(
            text("SELECT count(*) FROM users WHERE current_score > :s AND score_reached_at IS NOT NULL AND NOT banned"),
            {"s": score},
        ).scalar_one()
    return higher + 1
