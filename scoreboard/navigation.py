"""Reading the boards: which period, a page after a cursor, around a user, one user, and
the list of closed periods with their winners.

The periods Redis holds (each board's open period, the ones closing, and the last closed)
are read from their rankings there; older, final periods from PostgreSQL's final
standings, whose pages are cached in Redis until a revert changes them.

A cursor is opaque to clients: the board, the period and the last entry given (score,
when it was reached, user id), signed, so that a cursor of another board or period, or a
garbled one, is refused. The next page starts right after that entry's place, so entries
that do not move are never repeated or skipped however the board changes between pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson
import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from scoreboard import ranking
from scoreboard.boards import ALL_TIME_ID, Board, Period, new_season, previous_period, to_ms
from scoreboard.errors import Refused
from scoreboard.periods import CLOSING, FINAL, OPEN, Calendar, state
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts

PAGE_CACHE_TTL = 300


@dataclass(frozen=True)
class PeriodView:
    """A board's period as the API shows it (``state``: open, closing or final)."""

    board: Board
    period: Period
    state: str
    revised_at: datetime | None = None

    def as_dict(self) -> dict:
        return {"key": self.period.key, "starts_at": self.period.starts_at_ms, "ends_at": self.period.ends_at_ms,
                "state": self.state, "revised_at": None if self.revised_at is None else to_ms(self.revised_at)}


class Cursors:
    """Signs and reads cursors (see the module's docstring).

    Args:
        secret: the service's secret key.
    """

    def __init__(self, secret: str):
        self._key = hashlib.sha256(b"board cursor:" + secret.encode()).digest()

    def make(self, board: str, period: str, score: int, member: bytes) -> str:
        payload = orjson.dumps([board, period, score, member.hex()])
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    def read(self, cursor: str, board: str, period: str) -> tuple[int, bytes]:
        """(score, member) of a cursor of this board and period.

        Raises:
            Refused: ``invalid_cursor`` for a garbled cursor or one of another board or period.
        """
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            payload, mac = raw[:-12], raw[-12:]
            if not hmac.compare_digest(mac, hmac.new(self._key, payload, hashlib.sha256).digest()[:12]):
                raise ValueError("signature")
            their_board, their_period, score, member = orjson.loads(payload)
            member = bytes.fromhex(member)
            if (their_board, their_period) != (board, period) or len(member) != 12 or not isinstance(score, int):
                raise ValueError("another board or period")
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise Refused("invalid_cursor", "This cursor is not one of this board and period.") from None
        return score, member


def board_of(calendar: Calendar, board_id: str) -> Board:
    board = calendar.board(board_id)
    if board is None:
        raise Refused("unknown_board", f"There is no board {board_id!r}.")
    return board


def resolve(engine: Engine, calendar: Calendar, board_id: str, key: str | None, now: datetime) -> PeriodView | None:
    """The period asked for (its key), else the open one, else the last closed one; None on a
    season board that never had a season.

    Raises:
        Refused: ``unknown_board``, ``unknown_period``.
    """
    board = board_of(calendar, board_id)
    period = calendar.period_at(board, now) if key is None else calendar.period_of_key(board, key)
    if key is not None and (period is None or period.starts_at > now):
        raise Refused("unknown_period", f"Board {board.id!r} has no period {key!r} (yet).")
    if period is not None and period.contains(now):
        return PeriodView(board, period, OPEN)  # open: nothing to read (only a closed period is revised)
    with engine.connect() as conn:
        if period is None:  # between seasons: the last closed one
            row = conn.execute(text("SELECT key FROM board_periods WHERE board = :board AND closed_at IS NOT NULL"
                                    " ORDER BY starts_at DESC LIMIT 1"), {"board": board.id}).first()
            if row is None:
                return None
            period = calendar.period_of_key(board, row.key)
        row = conn.execute(text("SELECT closed_at, revised_at FROM board_periods WHERE board = :board AND key = :key"),
                           {"board": board.id, "key": period.key}).first()
    if row is None:
        raise Refused("unknown_period", f"Board {board.id!r} has no standings for period {period.key!r}.")
    return PeriodView(board, period, state(period.ends_at, row.closed_at, now), row.revised_at)


def listing(calendar: Calendar, now: datetime) -> list[dict]:
    """``GET /api/boards``: each board with its open period and when it next resets."""
    out = []
    for board in calendar.boards:
        period = calendar.period_at(board, now)
        if period is not None:
            reset = period.ends_at_ms
        else:  # between seasons: the next season's start
            later = [s for s in calendar.seasons_of(board.id) if s.starts_at > now]
            reset = min((to_ms(s.starts_at) for s in later), default=None)
        out.append({"id": board.id, "window": board.window, "time_zone": board.time_zone,
                    "period": None if period is None else {"key": period.key, "starts_at": period.starts_at_ms,
                                                           "ends_at": period.ends_at_ms},
                    "next_reset_at": reset})
    return out


class Reader:
    """The reads of the board periods, from Redis or PostgreSQL (see the module's docstring).

    Args:
        engine: where older periods are read (may be a replica).
        r, scripts, keys: the Redis client, its scripts, the key names.
        cursors: the cursor codec.
    """

    def __init__(self, engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, cursors: Cursors):
        self.engine, self.redis, self.scripts, self.keys, self.cursors = engine, r, scripts, keys, cursors

    def _in_redis(self, view: PeriodView) -> bool:
        if self.redis.exists(self.keys.board_ready(view.board.id, view.period.key)):
            return True
        if view.state in (OPEN, CLOSING):
            raise Refused("unavailable", "This board is being rebuilt; try again shortly.")
        return False

    def page(self, view: PeriodView, limit: int, cursor: str | None) -> dict:
        """``entries``, ``total`` and ``next_cursor`` of one page."""
        board, key = view.board.id, view.period.key
        after = self.cursors.read(cursor, board, key) if cursor else None
        if self._in_redis(view):
            args = [self.keys.board_base(board, key), limit, "after", *(after or ("", b""))]
            reply = self.scripts.page(keys=[self.keys.usernames], args=args)
            entries, last = _entries(reply[2:])
            total, more = reply[0], reply[1] + len(entries) < reply[0]
            entries = self._hide_banned(view, entries)
        else:
            entries, last, total, more = self._final_page(board, key, limit, after)
        next_cursor = self.cursors.make(board, key, *last) if more and last else None
        return {"entries": entries, "total": total, "next_cursor": next_cursor}

    def around(self, view: PeriodView, user_id: int, limit: int) -> dict:
        """The user's entry with the entries above and below it (``limit`` in all, shifted at
        the top or bottom so the page stays full), ``total`` and ``me``."""
        board, key = view.board.id, view.period.key
        if self._in_redis(view):
            reply = self.scripts.page(keys=[self.keys.usernames],
                                      args=[self.keys.board_base(board, key), limit, "around", user_id])
            total = reply[0]
            if reply[1] < 0:
                return {"entries": [], "total": total, "me": None}
            entries = self._hide_banned(view, _entries(reply[2:])[0])
        else:
            entries, total = self._final_around(board, key, user_id, limit)
        mine = next((e for e in entries if e["user_id"] == user_id), None)
        return {"entries": entries if mine else [], "total": total,
                "me": {"rank": mine["rank"], "score": mine["score"]} if mine else None}

    def user(self, view: PeriodView, user_id: int) -> dict:
        """One user's ``rank`` (None when not on the board), ``score``, ``total`` and ``percentile``."""
        board, key = view.board.id, view.period.key
        if self._in_redis(view):
            total = self.redis.zcard(self.keys.board_ranking(board, key))
            found = ranking.user_entry(self.redis, self.keys, user_id, board, key)
            rank, score = found if found else (None, None)
        else:
            with self.engine.connect() as conn:
                row = conn.execute(text("SELECT final_rank, score FROM board_scores WHERE board = :b AND period = :p"
                                        " AND user_id = :u"), {"b": board, "p": key, "u": user_id}).first()
                total = _final_total(conn, board, key)
            rank, score = (row.final_rank, row.score) if row is not None and row.final_rank is not None else (None, None)
        percentile = None if rank is None else round(100 * (total - rank + 1) / total, 2)
        return {"rank": rank, "score": score, "total": total, "percentile": percentile}

    def _hide_banned(self, view: PeriodView, entries: list[dict]) -> list[dict]:
        """A final period keeps the users banned after it closed: they are not shown."""
        if view.state != FINAL or not entries:
            return entries
        banned = self.redis.smismember(self.keys.banned, [e["user_id"] for e in entries])
        return [e for e, is_banned in zip(entries, banned) if not is_banned]

    # --------------------------------------------------------------- final periods

    def _final_page(self, board: str, key: str, limit: int, after) -> tuple[list[dict], tuple | None, int, bool]:
        field = f"{after[0]}:{after[1].hex()}|{limit}" if after else f"|{limit}"
        cached = self.redis.hget(self.keys.board_pages(board, key), field)
        if cached is not None:
            page = orjson.loads(cached)
        else:
            with self.engine.connect() as conn:
                where, params = "", {"b": board, "p": key, "n": limit + 1}
                if after:
                    score, member = after
                    params |= {"s": score, "t": ranking.member_reached_at(member), "u": ranking.member_user(member)}
                    where = (" AND (b.score < :s OR (b.score = :s AND (b.reached_at > :t"
                             " OR (b.reached_at = :t AND b.user_id < :u))))")
                rows = conn.execute(text(_FINAL_ROWS + where + _FINAL_ORDER + " LIMIT :n"), params).all()
                total = _final_total(conn, board, key)
            page = {"rows": [_row(r) for r in rows[:limit]], "more": len(rows) > limit, "total": total}
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self.keys.board_pages(board, key), field, orjson.dumps(page))
            pipe.expire(self.keys.board_pages(board, key), PAGE_CACHE_TTL)
            pipe.execute()
        rows = page["rows"]
        last = (rows[-1]["score"], bytes.fromhex(rows[-1]["member"])) if rows else None
        return [{k: v for k, v in row.items() if k != "member"} for row in rows], last, page["total"], page["more"]

    def _final_around(self, board: str, key: str, user_id: int, limit: int) -> tuple[list[dict], int]:
        with self.engine.connect() as conn:
            total = _final_total(conn, board, key)
            me = conn.execute(text(_FINAL_ROWS + " AND b.user_id = :u"), {"b": board, "p": key, "u": user_id}).first()
            if me is None:
                return [], total
            params = {"b": board, "p": key, "s": me.score, "t": me.reached_at, "u": user_id, "n": limit}
            above = conn.execute(text(
                _FINAL_ROWS + " AND (b.score > :s OR (b.score = :s AND (b.reached_at < :t"
                " OR (b.reached_at = :t AND b.user_id > :u))))"
                " ORDER BY b.score ASC, b.reached_at DESC, b.user_id ASC LIMIT :n"), params).all()
            below = conn.execute(text(
                _FINAL_ROWS + " AND (b.score < :s OR (b.score = :s AND (b.reached_at > :t"
                " OR (b.reached_at = :t AND b.user_id < :u))))" + _FINAL_ORDER + " LIMIT :n"), params).all()
        rows = list(reversed(above)) + [me] + list(below)
        mine = len(above)
        start = max(0, min(mine - (limit - 1) // 2, len(rows) - limit))
        return [{k: v for k, v in _row(r).items() if k != "member"} for r in rows[start:start + limit]], total


# A final period's standings: the ranks written when it closed (an admin's revert rewrites
# them); a user banned since is left out, the others keep their ranks.
_FINAL_ROWS = ("SELECT b.final_rank, b.user_id, u.username, b.score, b.reached_at FROM board_scores b"
               " JOIN users u ON u.id = b.user_id WHERE b.board = :b AND b.period = :p AND b.final_rank IS NOT NULL"
               " AND NOT u.banned")
_FINAL_ORDER = " ORDER BY b.score DESC, b.reached_at ASC, b.user_id DESC"


def _final_total(conn, board: str, key: str) -> int:
    return conn.execute(text("SELECT count(*) FROM board_scores b JOIN users u ON u.id = b.user_id"
                             " WHERE b.board = :b AND b.period = :p AND b.final_rank IS NOT NULL AND NOT u.banned"),
                        {"b": board, "p": key}).scalar_one()


def _row(row) -> dict:
    return {"rank": row.final_rank, "user_id": row.user_id, "username": row.username, "score": row.score,
            "member": ranking.member(row.user_id, row.reached_at).hex()}


def _entries(flat: list) -> tuple[list[dict], tuple | None]:
    """Board entries from the page script's (member, score, rank, username) groups, and the
    (score, member) of the last one."""
    entries, last = [], None
    for i in range(0, len(flat), 4):
        member, score = flat[i], int(float(flat[i + 1]))
        entries.append({"rank": int(flat[i + 2]), "user_id": ranking.member_user(member),
                        "username": flat[i + 3].decode(), "score": score})
        last = (score, member)
    return entries, last


def places_of(engine: Engine, r: redis.Redis, keys: Keys, calendar: Calendar, user_id: int, now: datetime) -> dict:
    """``GET /api/users/me``'s ``boards``: the user's place in each board's open period they
    are on (``previous_rank``: their final rank in the period before, else null)."""
    wanted = [(board, period) for board, period in calendar.periods_at(now)]
    previous = {board.id: previous_period(board, period, calendar.seasons_of(board.id)) for board, period in wanted}
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT board, period, score, final_rank FROM board_scores WHERE user_id = :u"
            " AND (board, period) IN (SELECT * FROM unnest(CAST(:boards AS text[]), CAST(:periods AS text[])))"),
            {"u": user_id, "boards": [b.id for b, _ in wanted] + [b for b, p in previous.items() if p],
             "periods": [p.key for _, p in wanted] + [p.key for p in previous.values() if p]}).all()
        total = conn.execute(text("SELECT current_score, score_reached_at FROM users WHERE id = :u"),
                             {"u": user_id}).first()
    found = {(row.board, row.period): row for row in rows}
    places = {}
    for board, period in wanted:
        if board.id == ALL_TIME_ID:
            if total is None or total.score_reached_at is None:
                continue
            score = total.current_score
        elif (board.id, period.key) in found:
            score = found[board.id, period.key].score
        else:
            continue
        before = previous[board.id]
        old = found.get((board.id, before.key)) if before else None
        places[board.id] = {"period": period.key, "score": score,
                            "rank": ranking.rank_of(engine, r, keys, user_id, score, board.id, period.key),
                            "previous_rank": old.final_rank if old is not None else None}
    return places


def closed_periods(engine: Engine, calendar: Calendar, board_id: str, limit: int, cursor: int | None) -> dict:
    """The board's closed periods, newest first, with their winners; ``cursor`` is the
    ``starts_at`` (unix ms) of the last period of the previous page."""
    board = board_of(calendar, board_id)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT p.key, p.starts_at, p.ends_at, p.revised_at, w.user_id, w.username, w.score"
            " FROM board_periods p LEFT JOIN LATERAL ("
            "  SELECT b.user_id, u.username, b.score FROM board_scores b JOIN users u ON u.id = b.user_id"
            "  WHERE b.board = p.board AND b.period = p.key AND b.final_rank = 1"
            "  ORDER BY b.reached_at ASC, b.user_id DESC LIMIT 1) w ON true"
            " WHERE p.board = :board AND p.closed_at IS NOT NULL AND (CAST(:before AS timestamptz) IS NULL"
            " OR p.starts_at < :before) ORDER BY p.starts_at DESC LIMIT :n"),
            {"board": board.id, "before": None if cursor is None else datetime.fromtimestamp(cursor / 1000, timezone.utc),
             "n": limit + 1}).all()
    periods = [{
        "key": row.key, "starts_at": to_ms(row.starts_at), "ends_at": None if row.ends_at is None else to_ms(row.ends_at),
        "state": FINAL, "revised_at": None if row.revised_at is None else to_ms(row.revised_at),
        "winner": None if row.user_id is None else {"user_id": row.user_id, "username": row.username,
                                                    "score": row.score},
    } for row in rows[:limit]]
    more = len(rows) > limit
    return {"periods": periods, "next_cursor": str(periods[-1]["starts_at"]) if more else None}


def add_season(engine: Engine, calendar: Calendar, board_id: str, key: str, starts_at: datetime, ends_at: datetime,
               now: datetime, r: redis.Redis | None = None, keys: Keys | None = None) -> Period:
    """An admin's new season of a season board.

    Raises:
        Refused: ``unknown_board``; ``invalid_request`` (not a season board, a bad key, time
            travel); ``period_overlap``.
    """
    board = board_of(calendar, board_id)
    if board.window != "season":
        raise Refused("invalid_request", f"Board {board.id!r} is not a season board: its periods follow the clock.")
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:board))"), {"board": board.id})
        seasons = Calendar.load(conn, (board,)).seasons_of(board.id)
        season = new_season(key, starts_at, ends_at, seasons, now)
        conn.execute(text("INSERT INTO board_periods (board, key, starts_at, ends_at, season)"
                          " VALUES (:board, :key, :starts_at, :ends_at, true)"),
                     {"board": board.id, "key": season.key, "starts_at": season.starts_at, "ends_at": season.ends_at})
        if r is not None:  # the stream learns the season from Redis
            Calendar.load(conn, calendar.boards).publish_seasons(r, keys)
    return season


