"""The boards' rankings in Redis (derived from PostgreSQL), their caches, and their rebuild.

Each board period Redis holds has its own ranking (``lua/ranking.lua`` describes the keys).
The all-time board's truth is ``users.current_score``; every other board's is
``board_scores``. Equal scores are ordered by who reached them first, then by the higher
user id, in Redis (sorted set member order) and in PostgreSQL (``ORDER BY``) alike.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timedelta
from typing import NamedTuple

from typing import TYPE_CHECKING

import orjson
import redis

from scoreboard import metrics
from scoreboard.boards import EPOCH
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

ALL_TIME = "all-time"
ALL = "all"  # the all-time board's one period
INVERT_US = 2**53 - 1  # members hold this minus the reached-at microseconds
_MICROSECOND = timedelta(microseconds=1)
REBUILD_CHUNK = 5000
# The PostgreSQL fallback: one request fills the cache; the others poll it briefly.
FILL_LOCK_MS = 5000
FILL_WAIT_S = 2.0
FILL_POLL_S = 0.02

# Every entry of a board period, in board order, with what its ranking entry needs. The
# all-time board reads the users' totals; the others, their rows of the period.
_ENTRIES_SQL = {
    True: ("SELECT id AS user_id, username, current_score AS score, score_reached_at AS reached_at,"
           " last_history_id, banned FROM users WHERE score_reached_at IS NOT NULL"),
    False: ("SELECT b.user_id, u.username, b.score, b.reached_at, u.last_history_id, u.banned"
            " FROM board_scores b JOIN users u ON u.id = b.user_id WHERE b.board = :board AND b.period = :period"),
}
BOARD_ORDER_SQL = "current_score DESC, score_reached_at ASC, id DESC"  # the all-time board's order
_ORDER_SQL = {True: BOARD_ORDER_SQL, False: "b.score DESC, b.reached_at ASC, b.user_id DESC"}
_RANKED_SQL = {True: "AND NOT banned", False: "AND NOT u.banned"}


class Entry(NamedTuple):
    """A user's entry on a board period as a change leaves it, for ``lua/ranking.lua``."""

    history_id: int  # the user's latest history row: orders the updates of one user
    score: int
    member: bytes  # the sorted set member, or b"" to take the user off the board
    username: str


def _sql(query: str):
    """A SQL statement. SQLAlchemy is loaded only here: the stream process uses this module
    (the Redis side of the rankings) and never loads it."""
    from sqlalchemy import text

    return text(query)


def member(user_id: int, reached_at: datetime) -> bytes:
    """Sorted set member of a user: reverse byte order = earlier first, then higher id."""
    reached_us = (reached_at - EPOCH) // _MICROSECOND  # exact: a float timestamp may be a microsecond off
    return (INVERT_US - reached_us).to_bytes(7, "big") + user_id.to_bytes(5, "big")


def member_reached_at(entry: bytes) -> datetime:
    """When the user of a sorted set member reached their score."""
    return EPOCH + _MICROSECOND * (INVERT_US - int.from_bytes(entry[:7], "big"))


def member_user(entry: bytes) -> int:
    """The user id of a sorted set member."""
    return int.from_bytes(entry[7:], "big")


def entry(user_id: int, history_id: int, score: int, reached_at: datetime | None, username: str,
          ranked: bool = True) -> Entry:
    """A user's entry (off the board when not ``ranked`` or never scored)."""
    on_board = ranked and reached_at is not None
    return Entry(history_id, score, member(user_id, reached_at) if on_board else b"", username)


def rebuild(engine: "Engine", r: redis.Redis, scripts: Scripts, keys: Keys, board: str = ALL_TIME,
            period: str = ALL, wait: float = 30.0) -> bool:
    """Load a board period's ranking from PostgreSQL (after Redis lost it, or when a period
    is first held); one process does it at a time.

    Safe alongside running batches: entries only move forward (history id order).

    Returns:
        True when the ranking is ready afterwards.
    """
    token = secrets.token_hex(8)
    lock, ready = keys.board_rebuild_lock(board, period), keys.board_ready(board, period)
    deadline = time.monotonic() + wait
    while not r.set(lock, token, nx=True, ex=120):
        if r.exists(ready):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    try:
        if r.exists(ready):
            return True
        started = time.monotonic()
        count = 0
        base = keys.board_base(board, period)
        all_time = board == ALL_TIME
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, max_row_buffer=REBUILD_CHUNK).execute(
                _sql(_ENTRIES_SQL[all_time]), {"board": board, "period": period})
            for rows in result.partitions(REBUILD_CHUNK):
                args: list = [base]
                for row in rows:
                    args += [row.user_id, *entry(row.user_id, row.last_history_id, row.score, row.reached_at,
                                                 row.username, ranked=not row.banned)]
                scripts.rebuild(keys=[keys.usernames], args=args)
                count += len(rows)
            if all_time:
                banned = [row[0] for row in conn.execute(_sql("SELECT id FROM users WHERE banned"))]
                if banned:
                    r.sadd(keys.banned, *banned)
        pipe = r.pipeline(transaction=True)
        pipe.set(ready, 1)
        pipe.sadd(keys.boards_held, f"{board}/{period}")
        pipe.execute()
        log.info("ranking rebuilt", extra={"board": board, "period": period, "entries": count,
                                           "seconds": round(time.monotonic() - started, 3)})
        return True
    finally:
        scripts.unlock(keys=[lock], args=[token])


def refresh(scripts: Scripts, keys: Keys, board: str, period: str, cache_ttl: int, force: bool = False) -> list:
    """Fill a board period's cache from its ranking (``lua/refresh.lua``)."""
    return scripts.refresh(keys=[keys.usernames, keys.board_version],
                           args=[keys.board_base(board, period), board, period, cache_ttl, "force" if force else ""])


def read_board(engine: "Engine", r: redis.Redis, scripts: Scripts, keys: Keys, limit: int, cache_ttl: int,
               board: str = ALL_TIME, period: str = ALL) -> bytes:
    """The body of a board period's top ``limit`` (at most 100), as JSON bytes (seed flow 5).

    From the cache when it is there; on a miss, refilled from the Redis ranking (one
    atomic script, so concurrent misses fill once); while the ranking is missing or
    being rebuilt, from PostgreSQL (``engine`` may be a replica), one request filling
    the cache for the others, so the answer is never a partial board.
    """
    cached = cached_board(r, keys, limit, board, period)
    if cached is not None:
        metrics.BOARD_READS.labels("cache").inc()
        return cached
    reply = refresh(scripts, keys, board, period, cache_ttl)
    if reply[0] == b"ok":
        metrics.BOARD_READS.labels("ranking" if reply[3] == 1 else "cache").inc()
        return reply[1] if limit == 10 else _slice(reply[2], limit)
    body, source = fill_from_database(engine, r, scripts, keys, cache_ttl, board, period)
    metrics.BOARD_READS.labels(source).inc()
    return _slice(body, limit)


def cached_board(r: redis.Redis, keys: Keys, limit: int, board: str = ALL_TIME, period: str = ALL) -> bytes | None:
    """The body of the top ``limit`` from the board cache (one GET), or None on a miss."""
    cached = r.get(keys.board_top10(board, period) if limit == 10 else keys.board_top(board, period))
    if cached is None or limit == 10:
        return cached
    return _slice(cached, limit)


def fill_from_database(engine: "Engine", r: redis.Redis, scripts: Scripts, keys: Keys, cache_ttl: int,
                       board: str = ALL_TIME, period: str = ALL, wait: float | None = None) -> tuple[bytes, str]:
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
    lock = keys.board_fill_lock(board, period)
    if r.set(lock, owner, nx=True, px=FILL_LOCK_MS):
        try:
            # Version first, then the snapshot: a batch committed after the snapshot
            # publishes a higher version, so clients never see newer data labelled older.
            version = int(scripts.ensure_version(keys=[keys.board_version]))
            body = board_from_database(engine, r, keys, 100, board, period, version=version)
            top10 = _slice(body, 10)
            pipe = r.pipeline(transaction=True)
            pipe.set(keys.board_top(board, period), body, ex=cache_ttl, nx=True)
            pipe.set(keys.board_top10(board, period), top10, ex=cache_ttl, nx=True)
            pipe.execute()
            return body, "database"
        finally:
            scripts.unlock(keys=[lock], args=[owner])
    deadline = time.monotonic() + (FILL_WAIT_S if wait is None else wait)
    while time.monotonic() < deadline:
        time.sleep(FILL_POLL_S)
        cached = r.get(keys.board_top(board, period))
        if cached is not None:
            return cached, "cache_after_wait"
    return board_from_database(engine, r, keys, 100, board, period), "database_uncached"


def _slice(body: bytes, limit: int) -> bytes:
    board = orjson.loads(body)
    if len(board["entries"]) <= limit:
        return body
    board["entries"] = board["entries"][:limit]
    return orjson.dumps(board)


def board_from_database(engine: "Engine", r: redis.Redis, keys: Keys, limit: int, board: str = ALL_TIME,
                        period: str = ALL, version: int | None = None) -> bytes:
    """Read a board period's top ``limit`` from PostgreSQL (the fallback path).

    Args:
        version: the board version to label it with (default: the current one in Redis).
    """
    all_time = board == ALL_TIME
    with engine.connect() as conn:
        rows = conn.execute(
            _sql(f"{_ENTRIES_SQL[all_time]} {_RANKED_SQL[all_time]} ORDER BY {_ORDER_SQL[all_time]} LIMIT :limit"),
            {"board": board, "period": period, "limit": limit},
        ).all()
    if version is None:
        version = int(r.get(keys.board_version) or 0)
    return body(board, period, competition_ranks(rows), version)


def competition_ranks(rows) -> list[dict]:
    """Board entries of rows in board order (``user_id``, ``username``, ``score``), ranked
    1, 2, 2, 4 (the first row is rank 1)."""
    entries, rank, previous = [], 0, None
    for position, row in enumerate(rows, start=1):
        if row.score != previous:
            rank, previous = position, row.score
        entries.append({"rank": rank, "user_id": row.user_id, "username": row.username, "score": row.score})
    return entries


def body(board: str, period: str, entries: list[dict], version: int) -> bytes:
    """A board body: ``{"board", "period", "entries", "version", "generated_at"}``."""
    return orjson.dumps({"board": board, "period": period, "entries": entries, "version": version,
                         "generated_at": time.time_ns() // 1_000_000})


def user_entry(r: redis.Redis, keys: Keys, user_id: int, board: str = ALL_TIME,
               period: str = ALL) -> tuple[int, int] | None:
    """(competition rank, score) of a user in a board period's Redis ranking; None when off it."""
    guard = r.hget(keys.board_guard(board, period, user_id), str(user_id % 128))
    if guard is None or guard.startswith(b"-"):
        return None
    zkey = keys.board_ranking(board, period)
    score = r.zscore(zkey, guard[:12])
    if score is None:
        return None
    return r.zcount(zkey, f"({score}", "+inf") + 1, int(score)


def rank_of(engine: "Engine", r: redis.Redis, keys: Keys, user_id: int, score: int, board: str = ALL_TIME,
            period: str = ALL) -> int | None:
    """Competition rank of a user with ``score``: from Redis, or PostgreSQL while rebuilding."""
    if r.exists(keys.board_ready(board, period)):
        entry = user_entry(r, keys, user_id, board, period)
        if entry is not None:
            return entry[0]
    all_time = board == ALL_TIME
    column = "current_score" if all_time else "b.score"
    with engine.connect() as conn:
        higher = conn.execute(
            _sql(f"SELECT count(*) FROM ({_ENTRIES_SQL[all_time]} {_RANKED_SQL[all_time]} AND {column} > :s) AS t"),
            {"s": score, "board": board, "period": period},
        ).scalar_one()
    return higher + 1
