"""Closing board periods: final standings, once, behind a low watermark.

A period can close once it has ended and every submission accepted before its end is
applied or failed. The **watermark** is the oldest acceptance time among the batches not
yet applied (``Keys.batches``, scored by when each batch was opened, which is no later
than any of its submissions' acceptance; a batch that failed for good leaves that set):
once it passes a period's end, nothing can still arrive for that period.

Closing writes each entry's competition rank (banned users left out) and stamps
``closed_at`` in one transaction that locks the period's row, so batches still counting
in it (they hold it ``FOR SHARE``) finish first and later ones skip it. Then the board's
viewers are told (``period_closed`` and the new period's board, once: a flag in Redis),
and Redis lets go of the period before it: it holds each board's open period and the
last closed one; older ones are read from PostgreSQL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson
import redis
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from scoreboard import ranking
from scoreboard.boards import Board, Period, next_period
from scoreboard.periods import Calendar
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts

log = logging.getLogger(__name__)

# Most periods one run creates rows for on one board (a board with short periods after a
# long stop catches up over several runs).
CATCH_UP = 500


@dataclass
class Report:
    """What one run closed, and what it waits for."""

    closed: list[str] = field(default_factory=list)  # 'board/period'
    waiting: list[str] = field(default_factory=list)  # ended, not closable yet (the watermark)
    announced: int = 0
    released: int = 0  # periods Redis let go of

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def watermark(r: redis.Redis, keys: Keys) -> int | None:
    """Unix ms before which every accepted submission is applied or failed (None: all are)."""
    oldest = r.zrange(keys.batches, 0, 0, withscores=True)
    return int(oldest[0][1]) if oldest else None


def write_final_ranks(conn: Connection, board: str, period: str, revision: bool = False) -> None:
    """Write each entry's competition rank in the period's final standings.

    At the close (``revision`` False) the standings are the period's entries of users not
    banned; a revision (an admin's revert) ranks again the same entries, so that a ban
    after the close changes nobody's rank.
    """
    ranked = "b.final_rank IS NOT NULL" if revision else "NOT u.banned"
    conn.execute(text(
        "UPDATE board_scores s SET final_rank = r.rank FROM ("
        f" SELECT b.user_id, CASE WHEN {ranked} THEN rank() OVER (PARTITION BY {ranked} ORDER BY b.score DESC)"
        "   END AS rank"
        " FROM board_scores b JOIN users u ON u.id = b.user_id WHERE b.board = :board AND b.period = :period) r"
        " WHERE s.board = :board AND s.period = :period AND s.user_id = r.user_id"
        " AND s.final_rank IS DISTINCT FROM r.rank"), {"board": board, "period": period})


def final_top(conn: Connection, board: str, period: str, limit: int = 10) -> list[dict]:
    """The first ``limit`` entries of a final period's standings."""
    rows = conn.execute(text(
        "SELECT b.final_rank AS rank, b.user_id, u.username, b.score FROM board_scores b JOIN users u"
        " ON u.id = b.user_id WHERE b.board = :board AND b.period = :period AND b.final_rank IS NOT NULL"
        " ORDER BY b.score DESC, b.reached_at ASC, b.user_id DESC LIMIT :limit"),
        {"board": board, "period": period, "limit": limit}).all()
    return [dict(row._mapping) for row in rows]


def close_due(engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, boards: tuple[Board, ...],
              board_ttl: int, now: datetime | None = None) -> Report:
    """Close every period that has ended and that the watermark has passed; safe to run twice.

    Args:
        boards: the configured boards.
        board_ttl: seconds the new period's cached board lives.
        now: the clock (tests pass one).
    """
    now = now or datetime.now(timezone.utc)
    report = Report()
    with engine.connect() as conn:
        calendar = Calendar.load(conn, boards)
    mark = watermark(r, keys)
    for board in boards:
        if board.window == "all_time":
            continue
        _catch_up(engine, calendar, board, now)
        with engine.connect() as conn:
            ended = conn.execute(text(
                "SELECT key, starts_at, ends_at FROM board_periods WHERE board = :board AND closed_at IS NULL"
                " AND ends_at <= :now ORDER BY starts_at"), {"board": board.id, "now": now}).all()
        for row in ended:
            period = Period(row.key, row.starts_at, row.ends_at)
            if mark is not None and mark < period.ends_at_ms:
                report.waiting.append(f"{board.id}/{period.key}")
                break  # the later ones wait too
            if _close(engine, board.id, period.key):
                report.closed.append(f"{board.id}/{period.key}")
        report.announced += _announce_last(engine, r, scripts, keys, calendar, board, board_ttl, now)
        report.released += _release_older(engine, r, keys, board.id)
    if report.closed or report.waiting:
        log.info("periods closing", extra=report.as_dict())
    return report


def _catch_up(engine: Engine, calendar: Calendar, board: Board, now: datetime) -> None:
    """Give every period from the board's latest row to the current one a row (a period in
    which nothing counted still closes, with no winner)."""
    with engine.begin() as conn:
        latest = conn.execute(text(
            "SELECT key, starts_at, ends_at FROM board_periods WHERE board = :board ORDER BY starts_at DESC LIMIT 1"),
            {"board": board.id}).first()
        period = calendar.period_at(board, now) if latest is None else Period(latest.key, latest.starts_at,
                                                                                latest.ends_at)
        rows = []
        while period is not None and len(rows) < CATCH_UP:
            rows.append(period)
            if period.ends_at is None or period.ends_at > now:
                break
            period = next_period(board, period, calendar.seasons_of(board.id))
        if rows:
            conn.execute(text(
                "INSERT INTO board_periods (board, key, starts_at, ends_at)"
                " SELECT :board, k, s, e FROM unnest(CAST(:keys AS text[]), CAST(:starts AS timestamptz[]),"
                " CAST(:ends AS timestamptz[])) AS v(k, s, e) ON CONFLICT (board, key) DO NOTHING"),
                {"board": board.id, "keys": [p.key for p in rows], "starts": [p.starts_at for p in rows],
                 "ends": [p.ends_at for p in rows]})


def _close(engine: Engine, board: str, period: str) -> bool:
    """Write the final standings and stamp the period closed; False when it already was."""
    with engine.begin() as conn:
        row = conn.execute(text("SELECT closed_at FROM board_periods WHERE board = :board AND key = :period"
                                " FOR UPDATE"), {"board": board, "period": period}).one()
        if row.closed_at is not None:
            return False
        write_final_ranks(conn, board, period)
        conn.execute(text("UPDATE board_periods SET closed_at = now() WHERE board = :board AND key = :period"),
                     {"board": board, "period": period})
    log.info("period closed", extra={"board": board, "period": period})
    return True


def _last_closed(conn: Connection, board: str):
    return conn.execute(text(
        "SELECT key, starts_at, ends_at FROM board_periods WHERE board = :board AND closed_at IS NOT NULL"
        " ORDER BY starts_at DESC LIMIT 1"), {"board": board}).first()


def _announce_last(engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, calendar: Calendar,
                   board: Board, board_ttl: int, now: datetime) -> int:
    """Tell the board's viewers that its last closed period is final (once)."""
    with engine.connect() as conn:
        last = _last_closed(conn, board.id)
        if last is None or r.exists(keys.board_announced(board.id, last.key)):
            return 0
        top = final_top(conn, board.id, last.key)
    current = calendar.period_at(board, now)
    following = next_period(board, Period(last.key, last.starts_at, last.ends_at), calendar.seasons_of(board.id))
    message = orjson.dumps({
        "board": board.id, "period": last.key, "entries": top,
        "next_period": None if following is None else {
            "key": following.key, "starts_at": following.starts_at_ms, "ends_at": following.ends_at_ms},
    })
    base = ""
    if current is not None:
        ranking.rebuild(engine, r, scripts, keys, board.id, current.key)
        base = keys.board_base(board.id, current.key)
    version = scripts.announce(
        keys=[keys.usernames, keys.board_version, keys.board_announced(board.id, last.key)],
        args=[keys.events_channel, board_ttl, board.id, message, base, current.key if current else ""],
    )
    return 1 if int(version) else 0


def _release_older(engine: Engine, r: redis.Redis, keys: Keys, board: str) -> int:
    """Drop from Redis every closed period of the board but the last one."""
    with engine.connect() as conn:
        last = _last_closed(conn, board)
    if last is None:
        return 0
    released = 0
    held = {m.decode().split("/", 1)[1] for m in r.smembers(keys.boards_held) if m.decode().startswith(board + "/")}
    with engine.connect() as conn:
        closed = {row[0] for row in conn.execute(text(
            "SELECT key FROM board_periods WHERE board = :board AND key = ANY(:keys) AND closed_at IS NOT NULL"),
            {"board": board, "keys": list(held)})}
    for period in closed - {last.key}:
        with engine.connect() as conn:
            top_user = conn.execute(text("SELECT coalesce(max(user_id), 0) FROM board_scores WHERE board = :board"
                                         " AND period = :period"), {"board": board, "period": period}).scalar_one()
        drop_period(r, keys, board, period, top_user)
        released += 1
    return released


def drop_period(r: redis.Redis, keys: Keys, board: str, period: str, top_user: int) -> None:
    """Delete everything Redis holds of a board period (its ranking, guards and caches);
    ``top_user`` is the highest user id that may have an entry there."""
    names = [keys.board_ranking(board, period), keys.board_ready(board, period), keys.board_top(board, period),
             keys.board_top10(board, period), keys.board_published(board, period), keys.board_pages(board, period),
             keys.board_announced(board, period)]
    names += [keys.board_guard(board, period, n * 128) for n in range(top_user // 128 + 1)]
    pipe = r.pipeline(transaction=False)
    pipe.srem(keys.boards_held, f"{board}/{period}")
    for start in range(0, len(names), 1000):
        pipe.unlink(*names[start:start + 1000])
    pipe.execute()
