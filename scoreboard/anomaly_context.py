"""What the anomaly rules need to know of a batch's users, read inside the batch
transaction with a few set-based queries (one per kind of figure, whatever the batch size).

Every figure describes the state before the batch: submissions of the same batch are
added in order by ``observe`` (a user's second submission in a batch sees the first).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import median

from sqlalchemy.engine import Connection

from scoreboard.action_types import ActionType
from scoreboard.anomaly import History, Observation, Thresholds
from scoreboard.ranking import BOARD_ORDER_SQL

_RECENT_COUNT_SQL = """
SELECT u.id, (
    SELECT count(*) FROM (
        SELECT 1 FROM score_history h
        WHERE h.user_id = u.id AND h.reason = 'submission'
          AND h.created_at >= now() - make_interval(secs => %(window)s)
        LIMIT %(cap)s) capped)
FROM unnest(%(ids)s::bigint[]) AS u(id)
"""

# Each user's recent deltas, per type; their median and median absolute deviation are
# taken in Python (``summarise``): two percentile_cont passes over a self-join cost the
# transaction several times more, and grew with the history.
_HISTORY_SQL = """
SELECT u.id, h.action_type, array_agg(h.score_change)
FROM unnest(%(ids)s::bigint[]) AS u(id)
CROSS JOIN LATERAL (
    SELECT action_type, score_change FROM score_history
    WHERE user_id = u.id AND reason = 'submission'
    ORDER BY created_at DESC LIMIT %(n)s) h
GROUP BY u.id, h.action_type
"""

_BOARD_SQL = f"""
SELECT
  (SELECT current_score FROM users WHERE score_reached_at IS NOT NULL AND NOT banned
   ORDER BY {BOARD_ORDER_SQL} OFFSET %(top)s - 1 LIMIT 1),
  (SELECT current_score FROM users WHERE score_reached_at IS NOT NULL AND NOT banned
   ORDER BY {BOARD_ORDER_SQL} OFFSET %(far)s - 1 LIMIT 1)
"""


@dataclass
class BatchContext:
    """The figures of the batch's users, and the batch's own submissions seen so far."""

    limits: Thresholds
    recent: dict[int, int] = field(default_factory=dict)
    history: dict[tuple[int, str], History] = field(default_factory=dict)
    top_score: int | None = None
    far_score: int | None = None
    # accepted_at (ms) of each user's submissions already observed in this batch
    _seen: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))

    def observe(self, user_id: int, action_type: ActionType, score_delta: int, duration_ms: int,
                accepted_at: int, score_before: int) -> Observation:
        """The observation of the next submission of the batch (in the batch's order)."""
        window_start = accepted_at - self.limits.rate_window * 1000
        earlier = sum(1 for t in self._seen[user_id] if t >= window_start)
        self._seen[user_id].append(accepted_at)
        return Observation(
            score_delta=score_delta,
            duration_ms=duration_ms,
            action_type=action_type,
            recent_submissions=self.recent.get(user_id, 0) + earlier,
            history=self.history.get((user_id, action_type.name)),
            score_before=score_before,
            score_after=score_before + score_delta,
            top_score=self.top_score,
            far_score=self.far_score,
        )


def summarise(deltas: list[int]) -> History:
    """The count, median and median absolute deviation of ``deltas`` (not empty); the
    median of an even count is the mean of the middle two, as PostgreSQL's percentile_cont(0.5)."""
    mid = float(median(deltas))
    return History(samples=len(deltas), median=mid, mad=float(median([abs(d - mid) for d in deltas])))


def load(conn: Connection, user_ids: list[int], limits: Thresholds) -> BatchContext:
    """Read the figures of ``user_ids`` from PostgreSQL, before the batch's own rows exist.

    Args:
        conn: the batch transaction.
        user_ids: the users with submissions in the batch.
        limits: the rules' thresholds (the window, how much history, which ranks).
    """
    context = BatchContext(limits)
    if not user_ids:
        return context
    for uid, count in conn.exec_driver_sql(
        _RECENT_COUNT_SQL, {"ids": user_ids, "window": limits.rate_window, "cap": limits.rate_count}
    ):
        context.recent[uid] = count
    for uid, atype, deltas in conn.exec_driver_sql(_HISTORY_SQL, {"ids": user_ids, "n": limits.zscore_history}):
        context.history[(uid, atype)] = summarise(deltas)
    top, far = conn.exec_driver_sql(
        _BOARD_SQL, {"top": limits.jump_top, "far": limits.jump_from_rank}
    ).one()
    context.top_score, context.far_score = top, far
    return context
