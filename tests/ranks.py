"""Reading the boards' Redis rankings in tests (see scoreboard/lua/ranking.lua for the layout)."""

from __future__ import annotations

from scoreboard.boards import ALL_TIME_ID, ALL_TIME_KEY
from scoreboard.ranking import member_user
from scoreboard.redis_client import Keys


def ranked(r, keys: Keys, board: str = ALL_TIME_ID, period: str = ALL_TIME_KEY) -> dict[int, int]:
    """User id -> score of every entry in a board period's Redis ranking."""
    return {member_user(m): int(s) for m, s in r.zrange(keys.board_ranking(board, period), 0, -1, withscores=True)}


def member_of(r, keys: Keys, user_id: int, board: str = ALL_TIME_ID, period: str = ALL_TIME_KEY) -> bytes | None:
    """The user's sorted set member on a board period (None when off the board)."""
    guard = r.hget(keys.board_guard(board, period, user_id), str(user_id % 128))
    return None if guard is None or guard.startswith(b"-") else guard[:12]


def hold_newer(r, keys: Keys, user_id: int, history_id: int, board: str = ALL_TIME_ID,
               period: str = ALL_TIME_KEY) -> None:
    """Make Redis believe it holds the user's entry at ``history_id`` (a batch publishing
    later with an older history id is then skipped)."""
    key, field = keys.board_guard(board, period, user_id), str(user_id % 128)
    guard = r.hget(key, field)
    member = guard[:12] if guard is not None and not guard.startswith(b"-") else b"-"
    r.hset(key, field, member + str(history_id).encode())


def mark_ready(r, keys: Keys, board: str = ALL_TIME_ID, period: str = ALL_TIME_KEY) -> None:
    r.set(keys.board_ready(board, period), 1)
    r.sadd(keys.boards_held, f"{board}/{period}")
