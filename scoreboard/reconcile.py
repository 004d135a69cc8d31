"""Reconcile the Redis ranking with PostgreSQL, the truth.

A full scan in chunks: every user in PostgreSQL (by id) against their Redis entry, then
every sorted set member against its user. Entries that differ are drift: they are
corrected (never moved back past a newer batch) and counted, and the count is reported
for ``scoreboard_ranking_drift_users``. Users whose score changed in the last
``grace`` seconds are skipped: their batch may still be publishing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from scoreboard import ranking
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts

log = logging.getLogger(__name__)

CHUNK = 1000
GRACE_S = 60
# History id given to the entry of a deleted user, so no late update brings it back.
GONE_SEQ = 2**62


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


def reconcile(engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, channel_ttl: int,
              grace: float = GRACE_S, chunk: int = CHUNK) -> Report:
    """Compare the ranking with PostgreSQL, correct what differs, republish if anything did.

    Args:
        engine: the PostgreSQL engine (the primary: a lagging replica would report drift).
        channel_ttl: the board cache TTL, for the republished board.
        grace: seconds after a user's last change during which they are not checked.
        chunk: users (and sorted set members) read per round trip.

    Returns:
        The report; ``rebuilt`` when the ranking was missing and has been rebuilt instead.
    """
    report = Report()
    if not r.exists(keys.ranking_ready):
        report.rebuilt = ranking.rebuild(engine, r, scripts, keys)
        return report
    since = time.time() - grace
    after = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, username, current_score, score_reached_at, last_history_id, banned FROM users"
                     " WHERE id > :after ORDER BY id LIMIT :n"),
                {"after": after, "n": chunk},
            ).all()
        if not rows:
            break
        after = rows[-1].id
        report.users_checked += len(rows)
        _check_users(r, scripts, keys, rows, since, report)
    _check_members(engine, r, scripts, keys, chunk, report)
    if report.fixed or report.orphans_removed:
        scripts.republish(
            keys=[keys.ranking, keys.usernames, keys.board_version, keys.board_top, keys.board_top10,
                  keys.board_published],
            args=[keys.events_channel, channel_ttl],
        )
    if report.drift:
        log.warning("ranking drift corrected",
                    extra={**report.as_dict(), "user_ids": report.drifted_ids[:20]})
    return report


def _check_users(r: redis.Redis, scripts: Scripts, keys: Keys, rows, since: float, report: Report) -> None:
    uids = [row.id for row in rows]
    pipe = r.pipeline(transaction=False)
    pipe.hmget(keys.ranking_member, uids)
    pipe.hmget(keys.usernames, uids)
    members, names = pipe.execute()
    pipe = r.pipeline(transaction=False)
    for m in members:
        if m is not None:
            pipe.zscore(keys.ranking, m)
    found = iter(pipe.execute())
    scores = [next(found) if m is not None else None for m in members]
    fixes: list = []
    for row, have_member, have_name, have_score in zip(rows, members, names, scores):
        if row.score_reached_at is not None and row.score_reached_at.timestamp() > since:
            continue  # changed just now: its batch may still be publishing
        eligible = row.score_reached_at is not None and not row.banned
        want = ranking.member(row.id, row.score_reached_at) if eligible else ""
        if eligible:
            ok = (have_member is not None and have_member.decode() == want and have_score is not None
                  and int(have_score) == row.current_score
                  and (have_name or b"").decode() == row.username)
        else:
            ok = have_member is None
        if not ok:
            report.drift += 1
            report.drifted_ids.append(row.id)
            fixes += [row.id, row.last_history_id, row.current_score, want, row.username]
    if fixes:
        fixed, _ = scripts.reconcile(keys=ranking.ranking_keys(keys), args=[len(fixes) // 5, *fixes])
        report.fixed += fixed


def _check_members(engine: Engine, r: redis.Redis, scripts: Scripts, keys: Keys, chunk: int,
                   report: Report) -> None:
    """Sorted set members that no user owns any more, or whose user is gone."""
    cursor = 0
    while True:
        cursor, items = r.zscan(keys.ranking, cursor, count=chunk)
        if items:
            pairs = [(int(m.decode().rsplit(":", 1)[1]), m.decode()) for m, _ in items]
            report.members_checked += len(pairs)
            owners = r.hmget(keys.ranking_member, [uid for uid, _ in pairs])
            with engine.connect() as conn:
                existing = {row[0] for row in conn.execute(
                    text("SELECT id FROM users WHERE id = ANY(:ids)"), {"ids": [uid for uid, _ in pairs]})}
            orphans = []
            for (uid, m), owner in zip(pairs, owners):
                if owner is None or owner.decode() != m:
                    orphans += [uid, m]
                elif uid not in existing:  # the user is gone from PostgreSQL: unrank for good
                    report.drift += 1
                    report.drifted_ids.append(uid)
                    fixed, _ = scripts.reconcile(keys=ranking.ranking_keys(keys),
                                                 args=[1, uid, GONE_SEQ, 0, "", ""])
                    report.fixed += fixed
            if orphans:
                _, removed = scripts.reconcile(keys=ranking.ranking_keys(keys), args=[0, *orphans])
                report.orphans_removed += removed
                report.drift += removed
        if cursor == 0:
            break
