"""Admin decisions: ban and unban a user, approve or revert a flagged submission.

Each decision is one PostgreSQL transaction that writes a ``score_history`` row (reason
``ban``, ``unban`` or ``revert``; bans change no points), so that the user's history id
moves forward and the decision is on record. After commit, Redis follows through the same
script as a batch (``apply.publish``): the ranking entry moves only forward by history id,
so a batch that committed before the decision but publishes after it cannot undo it, and
the board's version, cache and event follow. A revert sends the board event only; the
contract has no personal event for it (the user sees the new score in ``/api/users/me``).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy.engine import Connection, Engine

from scoreboard import ranking
from scoreboard.action_types import INT64_MAX
from scoreboard.apply import BatchResult, publish_ready
from scoreboard.boards import ALL_TIME_ID, ALL_TIME_KEY
from scoreboard.closing import write_final_ranks
from scoreboard.errors import Refused
from scoreboard.events import logout_message
from scoreboard.logs import security_event
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from scoreboard.submissions import Submissions


@dataclass(frozen=True)
class Decision:
    """What an admin decision left behind.

    Attributes:
        user_id: the user concerned.
        username: their name.
        score: their score afterwards.
        banned: whether they are banned afterwards.
        state: the flag's state afterwards (flags only).
        version: the board version published (None when nothing was published).
    """

    user_id: int
    username: str
    score: int
    banned: bool
    state: str | None = None
    version: int | None = None


@dataclass(frozen=True)
class Moderator:
    """The connections an admin decision needs; built once per web process."""

    engine: Engine
    redis: redis.Redis
    scripts: Scripts
    keys: Keys
    result_ttl: int
    board_ttl: int

    def ban(self, user_id: int, admin_id: int) -> Decision:
        """Ban a user: off the board at once, submissions, new streams and refreshes refused,
        open streams ended (``event: logout``). Idempotent.

        Raises:
            Refused: ``not_found`` (no such user), ``cannot_ban_self``.
        """
        if user_id == admin_id:
            raise Refused("cannot_ban_self", "An admin cannot ban their own account.")
        with self.engine.begin() as conn:
            user = _lock_user(conn, user_id)
            seq = user.last_history_id
            if not user.banned:
                seq = _history_row(conn, user, 0, "ban")
                conn.exec_driver_sql("UPDATE users SET banned = true, last_history_id = %s WHERE id = %s",
                                     (seq, user_id))
            periods = _held_periods_of(conn, user_id)
        with self.redis.pipeline(transaction=True) as pipe:  # refused from now on; open streams end
            pipe.sadd(self.keys.banned, user_id)
            pipe.publish(self.keys.events_channel, logout_message(user_id=user_id))
            pipe.execute()
        version = self._publish(user, seq, user.current_score, None, periods)
        security_event("user_banned", user_id=user_id, admin_id=admin_id)
        return Decision(user_id, user.username, user.current_score, True, version=version)

    def unban(self, user_id: int, admin_id: int) -> Decision:
        """Lift a ban: back on the board with the score in PostgreSQL. Idempotent.

        Raises:
            Refused: ``not_found``.
        """
        with self.engine.begin() as conn:
            user = _lock_user(conn, user_id)
            seq = user.last_history_id
            if user.banned:
                seq = _history_row(conn, user, 0, "unban")
                conn.exec_driver_sql("UPDATE users SET banned = false, last_history_id = %s WHERE id = %s",
                                     (seq, user_id))
            periods = _held_periods_of(conn, user_id)
        self.redis.srem(self.keys.banned, user_id)
        version = self._publish(user, seq, user.current_score, user.score_reached_at, periods)
        security_event("user_unbanned", user_id=user_id, admin_id=admin_id)
        return Decision(user_id, user.username, user.current_score, False, version=version)

    def resolve(self, flag_id: int, decision: str, admin_id: int) -> Decision:
        """Approve a flagged submission, or revert it (its points taken back).

        Raises:
            Refused: ``not_found``, ``flag_resolved`` (already decided), ``invalid_score``
                (the revert would overflow the score).
        """
        if decision == "approve":
            return self.approve(flag_id, admin_id)
        if decision == "revert":
            return self.revert(flag_id, admin_id)
        raise Refused("invalid_request", "decision must be approve or revert.")

    def approve(self, flag_id: int, admin_id: int) -> Decision:
        """Close a flag as approved: the submission's points stay."""
        with self.engine.begin() as conn:
            _flag, user = _close_flag(conn, flag_id, "approved", admin_id)
        security_event("flag_resolved", flag_id=flag_id, decision="approve", user_id=user.id, admin_id=admin_id)
        return Decision(user.id, user.username, user.current_score, user.banned, "approved")

    def revert(self, flag_id: int, admin_id: int) -> Decision:
        """Close a flag as reverted: the submission's points are taken back, and the board follows."""
        with self.engine.begin() as conn:
            flag, user = _close_flag(conn, flag_id, "reverted", admin_id)
            counted_on = conn.exec_driver_sql("SELECT counted_on FROM score_history WHERE id = %s",
                                              (flag.history_id,)).scalar_one() or []
            score, seq, reached_at = self._revert(conn, user, flag, counted_on)
            revised = _revert_on_boards(conn, flag, counted_on)
            periods = _held_periods_of(conn, user.id, last_closed=True)
        if revised:  # the cached pages of those final standings are stale now
            self.redis.delete(*(self.keys.board_pages(board, period) for board, period in revised))
        version = self._publish(user, seq, score, None if user.banned else reached_at, periods)
        security_event("flag_resolved", flag_id=flag_id, decision="revert", user_id=user.id,
                       score_change=-flag.score_change, admin_id=admin_id)
        return Decision(user.id, user.username, score, user.banned, "reverted", version)

    @staticmethod
    def _revert(conn: Connection, user, flag, counted_on: list[str]) -> tuple[int, int, object]:
        """Take a flagged submission's points back from the total (the history row counts on
        the same board periods); return (score, history id, reached at)."""
        score = user.current_score - flag.score_change
        if not -INT64_MAX - 1 <= score <= INT64_MAX:
            raise Refused("invalid_score", "Reverting this submission would overflow the score.")
        seq = _history_row(conn, user, -flag.score_change, "revert", flag.action_type, flag.submission_id,
                           counted_on)
        reached_at = conn.exec_driver_sql(
            "UPDATE users SET current_score = %s, last_history_id = %s, score_reached_at = clock_timestamp()"
            " WHERE id = %s RETURNING score_reached_at",
            (score, seq, user.id),
        ).scalar_one()
        return score, seq, reached_at

    def _publish(self, user, seq: int, score: int, reached_at, periods: list) -> int:
        """Move the user's entries (all-time: ``score`` reached at ``reached_at``, None to take
        them off; the other boards Redis holds: their rows there, or off the board when
        ``reached_at`` is None), recompute and publish the boards."""
        on_board = reached_at is not None
        entries = {(ALL_TIME_ID, ALL_TIME_KEY): {user.id: ranking.entry(user.id, seq, score, reached_at, user.username,
                                                                        ranked=on_board)}}
        for row in periods:
            entries[row.board, row.period] = {user.id: ranking.entry(user.id, seq, row.score, row.reached_at,
                                                                     user.username, ranked=on_board)}
        submissions = Submissions(self.redis, self.scripts, self.keys)
        version, _ = publish_ready(self.engine, submissions, BatchResult(entries=entries), "", self.result_ttl,
                                   self.board_ttl)
        return version


def _held_periods_of(conn: Connection, user_id: int, last_closed: bool = False) -> list:
    """The user's rows in the board periods Redis holds: each board's unclosed periods, and
    with ``last_closed`` its last closed one (a ban changes no final standings; a revert does)."""
    final = (" OR p.starts_at = (SELECT max(q.starts_at) FROM board_periods q"
             " WHERE q.board = p.board AND q.closed_at IS NOT NULL)") if last_closed else ""
    return conn.exec_driver_sql(
        "SELECT s.board, s.period, s.score, s.reached_at FROM board_scores s"
        " JOIN board_periods p ON p.board = s.board AND p.key = s.period"
        f" WHERE s.user_id = %s AND (p.closed_at IS NULL{final})",
        (user_id,),
    ).all()


def _revert_on_boards(conn: Connection, flag, counted_on: list[str]) -> list[tuple[str, str]]:
    """Take a reverted submission's points back on every board period it counted on; a
    final period's standings are corrected and stamped ``revised_at``. Returns the final
    periods revised."""
    revised = []
    for where in counted_on:
        board, period = where.split("/", 1)
        if board == ALL_TIME_ID:
            continue
        conn.exec_driver_sql(
            "UPDATE board_scores SET score = score - %s, reached_at = clock_timestamp()"
            " WHERE board = %s AND period = %s AND user_id = %s",
            (flag.score_change, board, period, flag.user_id))
        final = conn.exec_driver_sql(
            "UPDATE board_periods SET revised_at = now() WHERE board = %s AND key = %s AND closed_at IS NOT NULL"
            " RETURNING key", (board, period)).first()
        if final is not None:
            write_final_ranks(conn, board, period, revision=True)
            revised.append((board, period))
    return revised


def _close_flag(conn: Connection, flag_id: int, state: str, admin_id: int):
    """Lock an open flag and its user, and close the flag as ``state``; return (flag, user).

    Raises:
        Refused: ``not_found``, ``flag_resolved``.
    """
    flag = conn.exec_driver_sql(
        "SELECT f.id, f.user_id, f.state, f.score_change, f.submission_id, f.history_id, h.action_type"
        " FROM score_flags f JOIN score_history h ON h.id = f.history_id WHERE f.id = %s FOR UPDATE OF f",
        (flag_id,),
    ).one_or_none()
    if flag is None:
        raise Refused("not_found", "There is no flag with this id.")
    if flag.state != "open":
        raise Refused("flag_resolved", f"This flag was already resolved ({flag.state}).")
    user = _lock_user(conn, flag.user_id)
    conn.exec_driver_sql("UPDATE score_flags SET state = %s, resolved_at = now(), resolved_by = %s WHERE id = %s",
                         (state, admin_id, flag_id))
    return flag, user


def _lock_user(conn: Connection, user_id: int):
    user = conn.exec_driver_sql(
        "SELECT id, username, current_score, score_reached_at, last_history_id, banned"
        " FROM users WHERE id = %s FOR UPDATE",
        (user_id,),
    ).one_or_none()
    if user is None:
        raise Refused("not_found", "There is no user with this id.")
    return user


def _history_row(conn: Connection, user, change: int, reason: str, action_type: str | None = None,
                 submission_id: str | None = None, counted_on: list[str] | None = None) -> int:
    """Insert a history row of an admin decision; return its id (the user's new history id)."""
    return conn.exec_driver_sql(
        "INSERT INTO score_history (user_id, action_id, action_type, score_change, new_score, submission_id, reason,"
        " counted_on) VALUES (%s, NULL, %s, %s, %s, %s, %s, %s) RETURNING id",
        (user.id, action_type, change, user.current_score + change, submission_id, reason, counted_on),
    ).scalar_one()
