"""Counting a batch on every board, inside its transaction, set based.

A submission counts on every board whose period contains the moment it was accepted
(the server's clock at its 202), even when it is applied after that period ended, as
long as the period is not final yet. The all-time board is the users' totals (written by
``apply``); every other board gets one row per period and user in ``board_scores``.

Exactly once holds per board and period as it does for the total: these rows change in
the same transaction that claims the action token. A period's row in ``board_periods`` is
created on first use and read ``FOR SHARE``, so that closing it (``FOR UPDATE``) waits
for batches still counting in it, and a batch that comes after the close skips it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from sqlalchemy.engine import Connection

from scoreboard import ranking
from scoreboard.ranking import Entry
from scoreboard.boards import ALL_TIME_ID, ALL_TIME_KEY
from scoreboard.periods import Calendar, utc_ms
from scoreboard.submissions import Submission


class Counted(NamedTuple):
    """One submission's place on one board period: its score there after the submission,
    and whether the submission gave the user their first entry there (no previous rank)."""

    board: str
    period: str
    score: int
    first: bool = False


class Item(NamedTuple):
    """A claimed submission, its history row, the user's total after it, and whether it is
    the user's first entry on the all-time board."""

    submission: Submission
    history_id: int
    total: int
    first: bool = False


class BoardCount(NamedTuple):
    """What counting a batch on the boards gives the rest of the batch."""

    places: dict[str, list[Counted]]  # by submission id, the all-time board first
    counted_on: dict[int, list[str]]  # by history id: 'board/period' of each period it counted in
    entries: dict[tuple[str, str], dict[int, Entry]]  # every period but all-time: by user id


def count_on_boards(conn: Connection, calendar: Calendar, items: list[Item], usernames: dict[int, str],
                    last_history: dict[int, int]) -> BoardCount:
    """Add each claimed submission to the periods it counts in, and say where it stands.

    Args:
        conn: the batch's transaction.
        calendar: the boards and their seasons.
        items: the claimed submissions, in the order they were accepted.
        usernames: the batch's users' names; ``last_history``: each user's latest history id.
    """
    places: dict[str, list[Counted]] = {}
    counted_on: dict[int, list[str]] = {}
    wanted: dict[tuple[str, str], object] = {}
    periods_of: dict[str, list[tuple[str, str]]] = {}
    for item in items:
        sub = item.submission
        found = [(b.id, p) for b, p in calendar.periods_at(utc_ms(sub.accepted_at)) if b.id != ALL_TIME_ID]
        periods_of[sub.id] = [(board, period.key) for board, period in found]
        for board, period in found:
            wanted[board, period.key] = period
    open_periods = _open_periods(conn, wanted)
    deltas: dict[tuple[str, str, int], int] = defaultdict(int)
    for item in items:
        for key in periods_of[item.submission.id]:
            if key in open_periods:
                deltas[(*key, item.submission.user_id)] += item.submission.score_delta
    rows = _add_scores(conn, deltas)
    running = {key: score - deltas[key] for key, (score, _, _) in rows.items()}
    new = {key for key, (_, _, inserted) in rows.items() if inserted}  # no entry before this batch
    for item in items:
        sub = item.submission
        here = [Counted(ALL_TIME_ID, ALL_TIME_KEY, item.total, item.first)]
        for board, period in periods_of[sub.id]:
            if (board, period) in open_periods:
                key = (board, period, sub.user_id)
                running[key] += sub.score_delta
                here.append(Counted(board, period, running[key], key in new))
                new.discard(key)
        places[sub.id] = here
        counted_on[item.history_id] = [f"{c.board}/{c.period}" for c in here]
    entries: dict[tuple[str, str], dict[int, Entry]] = defaultdict(dict)
    for (board, period, uid), (score, reached_at, _) in rows.items():
        entries[board, period][uid] = Entry(last_history[uid], score, ranking.member(uid, reached_at), usernames[uid])
    return BoardCount(places, counted_on, dict(entries))


def _open_periods(conn: Connection, wanted: dict) -> set[tuple[str, str]]:
    """Make sure each wanted period has its row; return those not final, locked FOR SHARE."""
    if not wanted:
        return set()
    boards, keys = [b for b, _ in wanted], [k for _, k in wanted]
    starts = [p.starts_at for p in wanted.values()]
    ends = [p.ends_at for p in wanted.values()]
    conn.exec_driver_sql(
        "INSERT INTO board_periods (board, key, starts_at, ends_at)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[])"
        " ON CONFLICT (board, key) DO NOTHING",
        (boards, keys, starts, ends),
    )
    return {
        (row.board, row.key)
        for row in conn.exec_driver_sql(
            "SELECT board, key FROM board_periods WHERE (board, key) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[])) AND closed_at IS NULL FOR SHARE",
            (boards, keys),
        )
    }


def _add_scores(conn: Connection, deltas: dict[tuple[str, str, int], int]) -> dict:
    """Add each (board, period, user)'s points; return their new (score, reached at, whether
    the row is new)."""
    if not deltas:
        return {}
    keys = sorted(deltas)  # one order for every batch: rows are locked without deadlocks
    result = conn.exec_driver_sql(
        "INSERT INTO board_scores (board, period, user_id, score, reached_at)"
        " SELECT b, p, u, d, clock_timestamp() FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[])"
        " AS v(b, p, u, d)"
        " ON CONFLICT (board, period, user_id) DO UPDATE"
        " SET score = board_scores.score + EXCLUDED.score, reached_at = EXCLUDED.reached_at"
        " RETURNING board, period, user_id, score, reached_at, (xmax = 0) AS inserted",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [deltas[k] for k in keys]),
    )
    return {(row.board, row.period, row.user_id): (row.score, row.reached_at, row.inserted) for row in result}
