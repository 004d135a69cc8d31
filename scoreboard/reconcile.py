"""Reconcile the rankings Redis holds with PostgreSQL, the truth.

For each board period Redis holds, a full scan in chunks: every entry in PostgreSQL (by
user id) against its Redis entry, then every sorted set member against its user.
Entries that differ are drift: they are corrected (never moved back past a newer batch)
and counted, and the count is reported for ``scoreboard_ranking_drift_users``. Users whose
entry changed in the last ``grace`` seconds are skipped: their batch may still be
publishing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from scoreboard import ranking
from scoreboard.boards import ALL_TIME_ID, ALL_TIME_KEY
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts

log = logging.getLogger(__name__)

CHUNK = 1000
GRACE_S = 60
# History id given to the entry of a deleted user, so no late update brings it back.
GONE_SEQ = 2**62

_ROWS_SQL = {
    True: ("SELECT id AS user_id, username, current_score AS score, score_reached_at AS reached_at,"
           " last_history_id, banned FROM users WHERE id > :after ORDER BY id LIMIT :n"),
    False: ("SELECT b.user_id, u.username, b.score, b.reached_at, u.last_history_id, u.banned"
            " FROM board_scores b JOIN users u ON u.id = b.user_id"
            " WHERE b.board = :board AND b.period = :period AND b.user_id > :after ORDER BY b.user_id LIMIT :n"),
}


@dataclass
class Report:
    """What one reconcile run found and did."""

    rebuilt: bool = False
    users_checked: int = 0
    members_checked: int = 0
    drift: int = 0
    fixed: int = 0
    orphans_removed: int = 0
    drifted_ids: list[int] = field(default_factory=list)  # the first few, for the log

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "drifted_ids"}


def held(r: redis.Redis, keys: Keys) -> list[tuple[str, str]]:
    """The board periods whose ranking Redis holds, the all-time board first."""
    periods = sorted(tuple(m.decode().split("/", 1)) for m in r.smembers(keys.boards_held))
    return [(ALL_TIME_ID, ALL_TIME_KEY)] + [p for p in periods if p != (ALL_TIME_ID, ALL_TIME_KEY)]


def reconcile(engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, channel_ttl: int,
              grace: float = GRACE_S, chunk: int = CHUNK) -> Report:
    """Compare every ranking Redis holds with PostgreSQL, correct what differs, republish
    each board period where anything did.

    Args:
        engine: the PostgreSQL engine (the primary: a lagging replica would report drift).
        channel_ttl: the board cache TTL, for the republished boards.
        grace: seconds after an entry's last change during which it is not checked.
        chunk: users (and sorted set members) read per round trip.

    Returns:
        The report; ``rebuilt`` when the all-time ranking was missing and has been rebuilt instead.
    """
    report = Report()
    if not r.exists(keys.board_ready(ALL_TIME_ID, ALL_TIME_KEY)):
        report.rebuilt = ranking.rebuild(engine, r, scripts, keys)
        return report
    since = time.time() - grace
    for board, period in held(r, keys):
        if not r.exists(keys.board_ready(board, period)):
            continue  # being rebuilt, or let go of
        before = (report.fixed, report.orphans_removed)
        all_time = board == ALL_TIME_ID
        after = 0
        while True:
            with engine.connect() as conn:
                rows = conn.execute(text(_ROWS_SQL[all_time]),
                                    {"board": board, "period": period, "after": after, "n": chunk}).all()
            if not rows:
                break
            after = rows[-1].user_id
            report.users_checked += len(rows)
            _check_entries(r, scripts, keys, board, period, rows, since, report)
            if all_time:
                _follow_bans(r, keys, rows)
        _check_members(engine, r, scripts, keys, board, period, chunk, report)
        if (report.fixed, report.orphans_removed) != before:
            scripts.republish(keys=[keys.usernames, keys.board_version],
                              args=[keys.events_channel, channel_ttl, keys.board_base(board, period), board, period])
    if report.drift:
        log.warning("ranking drift corrected", extra={**report.as_dict(), "user_ids": report.drifted_ids[:20]})
    return report


def _check_entries(r: redis.Redis, scripts: Scripts, keys: Keys, board: str, period: str, rows, since: float,
                   report: Report) -> None:
    uids = [row.user_id for row in rows]
    pipe = r.pipeline(transaction=False)
    for uid in uids:
        pipe.hget(keys.board_guard(board, period, uid), str(uid % 128))
    guards = pipe.execute()
    members = [g[:12] if g is not None and not g.startswith(b"-") else None for g in guards]
    pipe = r.pipeline(transaction=False)
    pipe.hmget(keys.usernames, uids)
    for m in members:
        if m is not None:
            pipe.zscore(keys.board_ranking(board, period), m)
    replies = pipe.execute()
    names, found = replies[0], iter(replies[1:])
    scores = [next(found) if m is not None else None for m in members]
    fixes: list = []
    for row, have_member, have_name, have_score in zip(rows, members, names, scores):
        if row.reached_at is not None and row.reached_at.timestamp() > since:
            continue  # changed just now: its batch may still be publishing
        want = ranking.entry(row.user_id, row.last_history_id, row.score, row.reached_at, row.username,
                             ranked=not row.banned)
        if want.member:
            ok = (have_member == want.member and have_score is not None and int(have_score) == row.score
                  and (have_name or b"").decode() == row.username)
        else:
            ok = have_member is None
        if not ok:
            report.drift += 1
            report.drifted_ids.append(row.user_id)
            fixes += [row.user_id, *want]
    if fixes:
        fixed, _ = scripts.reconcile(keys=[keys.usernames], args=[keys.board_base(board, period), len(fixes) // 5,
                                                                  *fixes])
        report.fixed += fixed


def _follow_bans(r: redis.Redis, keys: Keys, rows) -> None:
    """The web's set of banned users follows users.banned too (a ban whose Redis step failed)."""
    banned = [row.user_id for row in rows if row.banned]
    allowed = [row.user_id for row in rows if not row.banned]
    pipe = r.pipeline(transaction=False)
    if banned:
        pipe.sadd(keys.banned, *banned)
    if allowed:
        pipe.srem(keys.banned, *allowed)
    pipe.execute()


def _check_members(engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, board: str, period: str,
                   chunk: int, report: Report) -> None:
    """Sorted set members that no user owns any more, or whose entry is gone from PostgreSQL."""
    base, zkey = keys.board_base(board, period), keys.board_ranking(board, period)
    sql = (text("SELECT id FROM users WHERE id = ANY(:ids)") if board == ALL_TIME_ID else
           text("SELECT user_id FROM board_scores WHERE board = :board AND period = :period AND user_id = ANY(:ids)"))
    cursor = 0
    while True:
        cursor, items = r.zscan(zkey, cursor, count=chunk)
        if items:
            members = [m for m, _ in items]
            uids = [ranking.member_user(m) for m in members]
            report.members_checked += len(members)
            pipe = r.pipeline(transaction=False)
            for uid in uids:
                pipe.hget(keys.board_guard(board, period, uid), str(uid % 128))
            owners = [g[:12] if g is not None and not g.startswith(b"-") else None for g in pipe.execute()]
            with engine.connect() as conn:
                existing = {row[0] for row in conn.execute(sql, {"ids": uids, "board": board, "period": period})}
            orphans = []
            for uid, m, owner in zip(uids, members, owners):
                if owner != m:
                    orphans.append(m)
                elif uid not in existing:  # the entry is gone from PostgreSQL: unrank for good
                    report.drift += 1
                    report.drifted_ids.append(uid)
                    fixed, _ = scripts.reconcile(keys=[keys.usernames], args=[base, 1, uid, GONE_SEQ, 0, b"", ""])
                    report.fixed += fixed
            if orphans:
                _, removed = scripts.reconcile(keys=[keys.usernames], args=[base, 0, *orphans])
                report.orphans_removed += removed
                report.drift += removed
        if cursor == 0:
            break
