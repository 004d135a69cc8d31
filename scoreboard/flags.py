"""Flagged submissions, for the admins' review: newest first, filtered, paged by id."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class FlagPage:
    """One page of flags and the cursor of the next (None on the last page)."""

    flags: list[dict]
    next_before: int | None


def _ms(value) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def list_flags(engine: Engine, *, state: str | None = None, rule: str | None = None, user_id: int | None = None,
               before: int | None = None, limit: int = 50) -> FlagPage:
    """Flags newest first (by id), keyset-paged: pass the previous page's ``next_before``.

    Args:
        engine: where to read: the primary, or the replica router (``ReadRouter``).
        state: only flags in this state (``open``, ``approved``, ``reverted``).
        rule: only flags on which this rule fired.
        user_id: only this user's flags.
        before: only flags with a smaller id (the cursor).
        limit: page size.
    """
    where, params = ["true"], {"limit": limit + 1}
    if state is not None:
        where.append("f.state = %(state)s")
        params["state"] = state
    if rule is not None:
        where.append("f.rules ? %(rule)s")
        params["rule"] = rule
    if user_id is not None:
        where.append("f.user_id = %(user_id)s")
        params["user_id"] = user_id
    if before is not None:
        where.append("f.id < %(before)s")
        params["before"] = before
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT f.id, f.user_id, u.username, f.history_id, f.submission_id, f.action_id, f.score_change,"
            " h.action_type, h.counted_on, f.rules, f.state, f.created_at, f.resolved_at, f.resolved_by"
            " FROM score_flags f JOIN users u ON u.id = f.user_id JOIN score_history h ON h.id = f.history_id"
            f" WHERE {' AND '.join(where)} ORDER BY f.id DESC LIMIT %(limit)s",
            params,
        ).all()
    flags = [
        {
            "id": row.id,
            "user_id": row.user_id,
            "username": row.username,
            "job_id": row.submission_id,
            "action_token": row.action_id,
            "action_type": row.action_type,
            "score_delta": row.score_change,
            "rules": row.rules,
            # the board periods the submission counted on (what a revert corrects)
            "boards": [dict(zip(("board", "period"), where.split("/", 1))) for where in row.counted_on or ()],
            "state": row.state,
            "created_at": _ms(row.created_at),
            "resolved_at": _ms(row.resolved_at),
            "resolved_by": row.resolved_by,
        }
        for row in rows[:limit]
    ]
    return FlagPage(flags, rows[limit - 1].id if len(rows) > limit else None)
