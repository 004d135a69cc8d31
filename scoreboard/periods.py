"""Board periods in PostgreSQL: which periods a moment falls in, their state, the seasons.

``scoreboard.boards`` computes periods from the configuration alone; seasons are defined
by admins and live in ``board_periods`` (``season`` true). A period gets its row when a
submission first counts in it, or when it closes (``scoreboard.closing``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from typing import TYPE_CHECKING

import orjson
import redis

from scoreboard.boards import ALL_TIME_ID, Board, Period, period_at, period_of_key
from scoreboard.redis_client import Keys

if TYPE_CHECKING:  # the stream process reads the calendar from Redis and never loads SQLAlchemy
    from sqlalchemy.engine import Connection

OPEN, CLOSING, FINAL = "open", "closing", "final"


def utc_ms(ms: int) -> datetime:
    """An aware UTC datetime of unix milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


@dataclass(frozen=True)
class Calendar:
    """The configured boards and their seasons, at one moment's knowledge.

    Attributes:
        boards: the boards in configuration order (``all-time`` first).
        seasons: the seasons of each season board, by board id.
    """

    boards: tuple[Board, ...]
    seasons: dict[str, tuple[Period, ...]]

    @classmethod
    def load(cls, conn: "Connection", boards: tuple[Board, ...]) -> "Calendar":
        """The calendar of ``boards``, with the seasons read from PostgreSQL."""
        from sqlalchemy import text

        seasons: dict[str, list[Period]] = {b.id: [] for b in boards if b.window == "season"}
        if seasons:
            for row in conn.execute(text("SELECT board, key, starts_at, ends_at FROM board_periods"
                                         " WHERE season AND board = ANY(:boards) ORDER BY starts_at"),
                                    {"boards": list(seasons)}):
                seasons[row.board].append(Period(row.key, row.starts_at, row.ends_at))
        return cls(boards, {k: tuple(v) for k, v in seasons.items()})

    @classmethod
    def from_redis(cls, r: redis.Redis, keys: Keys, boards: tuple[Board, ...]) -> "Calendar":
        """The calendar of ``boards`` with the seasons copied to Redis (``publish_seasons``)."""
        names = [b.id for b in boards if b.window == "season"]
        seasons: dict[str, tuple[Period, ...]] = {}
        for name, raw in zip(names, r.hmget(keys.seasons, names) if names else ()):
            seasons[name] = tuple(Period(key, utc_ms(start), utc_ms(end)) for key, start, end in orjson.loads(raw or b"[]"))
        return cls(boards, seasons)

    def publish_seasons(self, r: redis.Redis, keys: Keys) -> None:
        """Copy the seasons to Redis, for ``from_redis``."""
        if self.seasons:
            r.hset(keys.seasons, mapping={board: orjson.dumps([[p.key, p.starts_at_ms, p.ends_at_ms] for p in periods])
                                          for board, periods in self.seasons.items()})

    def board(self, board_id: str) -> Board | None:
        return next((b for b in self.boards if b.id == board_id), None)

    def seasons_of(self, board_id: str) -> tuple[Period, ...]:
        return self.seasons.get(board_id, ())

    def period_at(self, board: Board, instant: datetime) -> Period | None:
        return period_at(board, instant, self.seasons_of(board.id))

    def period_of_key(self, board: Board, key: str) -> Period | None:
        return period_of_key(board, key, self.seasons_of(board.id))

    def periods_at(self, instant: datetime) -> list[tuple[Board, Period]]:
        """Every board's period that contains ``instant`` (none for a season board between
        seasons), the all-time board's first."""
        found = []
        for board in self.boards:
            period = self.period_at(board, instant)
            if period is not None:
                found.append((board, period))
        return found


def state(ends_at: datetime | None, closed_at: datetime | None, now: datetime) -> str:
    """``open`` until the period ends, ``closing`` until it is closed, then ``final``."""
    if closed_at is not None:
        return FINAL
    if ends_at is not None and ends_at <= now:
        return CLOSING
    return OPEN


def is_all_time(board_id: str) -> bool:
    return board_id == ALL_TIME_ID
