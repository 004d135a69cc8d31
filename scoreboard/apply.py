"""Apply a batch of accepted submissions: one PostgreSQL transaction (seed flow 7, set
based), then, after commit only, the Redis ranking, cache, results and events.

Exactly once: the action token is the primary key of ``action_tokens``, inserted in the
same transaction as the points. A batch retried after a commit finds its own tokens and
reports them applied, without counting them again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import orjson
import redis
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from structlog.contextvars import bind_contextvars

from scoreboard import anomaly, anomaly_context, jobspec, metrics, ranking
from scoreboard.action_types import ActionType
from scoreboard.boards import ALL_TIME_ID, ALL_TIME_KEY, DEFAULT_BOARDS, Board
from scoreboard.counting import Counted, Item, count_on_boards
from scoreboard.periods import Calendar, utc_ms
from scoreboard.ranking import Entry
from scoreboard.errors import MESSAGES
from scoreboard.logs import security_event
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from scoreboard.submissions import Submission, Submissions

log = logging.getLogger(__name__)

EVENTS_LOG_LENGTH = 10_000


class BatchFailed(Exception):
    """The transaction failed for a reason that retrying the same batch will not fix.

    Attributes:
        submission_ids: the submissions of the batch, to be retried one by one.
    """

    def __init__(self, submission_ids: list[str], cause: BaseException):
        super().__init__(f"batch of {len(submission_ids)} failed: {cause}")
        self.submission_ids = submission_ids
        self.cause = cause


def is_transient(exc: BaseException) -> bool:
    """True for failures of a connection (the same work may succeed later)."""
    if isinstance(exc, (DisconnectionError, redis.ConnectionError, redis.TimeoutError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError)


@dataclass
class Outcome:
    """What happened to one submission."""

    submission: Submission
    state: str  # applied | rejected
    score: int = 0
    flagged: bool = False
    error: dict | None = None
    rules: dict | None = None  # the anomaly rules that fired, with their figures
    replayed: bool = False  # applied by an earlier attempt of the same batch
    places: list[Counted] = field(default_factory=list)  # its score on each board it counted on


class HistoryRow(NamedTuple):
    id: int
    user_id: int
    action_id: str
    action_type: str
    score_change: int
    new_score: int
    submission_id: str
    accepted_at: int  # unix ms


class FlagRow(NamedTuple):
    user_id: int
    history_id: int
    submission_id: str
    action_id: str
    score_change: int
    rules: str  # JSON: {rule name: the figures that made it fire}


@dataclass
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)
    # by (board, period): the entries to set, by user id (the all-time board's always there)
    entries: dict[tuple[str, str], dict[int, Entry]] = field(default_factory=dict)

    @property
    def users(self) -> dict[int, Entry]:
        """The all-time board's entries."""
        return self.entries.setdefault((ALL_TIME_ID, ALL_TIME_KEY), {})


def _rejected(sub: Submission, code: str, message: str | None = None) -> Outcome:
    return Outcome(sub, "rejected", error={"code": code, "message": MESSAGES[code] if message is None else message})


def apply_in_transaction(conn: Connection, subs: list[Submission], action_types: dict[str, ActionType],
                         limits: anomaly.Thresholds | None = None,
                         boards: tuple[Board, ...] = DEFAULT_BOARDS) -> BatchResult:
    """Apply ``subs`` inside the caller's transaction (which commits or rolls back), set based,
    in five steps: lock the users, claim the action tokens, count the claimed submissions
    on every board, write the history (and the users' totals), write the flags.

    Args:
        conn: the transaction.
        subs: the batch's submissions, in the order they were accepted.
        action_types: the configured action types by name.
        limits: the anomaly rules' thresholds (default: ``anomaly.Thresholds()``).
        boards: the configured boards.
    """
    outcomes: dict[str, Outcome] = {}
    locked = _lock_users(conn, subs)
    candidates = []
    for sub in subs:
        user = locked.get(sub.user_id)
        if user is None:
            outcomes[sub.id] = _rejected(sub, "user_unknown", "The account no longer exists.")
        elif user.banned:
            outcomes[sub.id] = _rejected(sub, "user_banned")
        else:
            candidates.append(sub)
    fresh = _claim_tokens(conn, candidates, outcomes)
    history, flags = _score(conn, fresh, locked, action_types, limits or anomaly.Thresholds(), outcomes)
    last_history = {row.user_id: row.id for row in history}
    firsts = {uid for uid, user in locked.items() if user.score_reached_at is None}
    items = []
    for row in history:
        items.append(Item(outcomes[row.submission_id].submission, row.id, row.new_score, row.user_id in firsts))
        firsts.discard(row.user_id)
    count = count_on_boards(conn, Calendar.load(conn, boards), items,
                            {uid: user.username for uid, user in locked.items()}, last_history)
    for row in history:
        outcomes[row.submission_id].places = count.places[row.submission_id]
    result = BatchResult(entries={**count.entries,
                                  (ALL_TIME_ID, ALL_TIME_KEY): _write_history(conn, history, locked, count.counted_on)})
    _write_flags(conn, flags)
    for uid, user in locked.items():  # users of the batch whose entry did not move
        if uid not in result.users and user.score_reached_at is not None and not user.banned:
            result.users[uid] = ranking.entry(uid, user.last_history_id, user.current_score, user.score_reached_at,
                                              user.username)
    result.outcomes = [outcomes[s.id] for s in subs]
    return result


def _lock_users(conn: Connection, subs: list[Submission]) -> dict:
    """Lock the batch's users (in id order, so that batches never deadlock); rows by id."""
    return {
        row.id: row
        for row in conn.exec_driver_sql(
            "SELECT id, username, current_score, banned, last_history_id, score_reached_at"
            " FROM users WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (sorted({s.user_id for s in subs}),),
        )
    }


def _claim_tokens(conn: Connection, candidates: list[Submission],
                  outcomes: dict[str, Outcome]) -> list[tuple[Submission, int]]:
    """Insert each submission's action token (the primary key makes it count once); return
    the submissions whose token this batch claimed, each with its history id. The others
    are settled in ``outcomes``: applied by an earlier attempt of the batch, or refused."""
    if not candidates:
        return []
    history_ids = sorted(
        row[0]
        for row in conn.exec_driver_sql(
            "SELECT nextval('score_history_id_seq') FROM generate_series(1, %s)", (len(candidates),)
        )
    )
    inserted = {
        row[0]
        for row in conn.exec_driver_sql(
            "INSERT INTO action_tokens (token, used, user_id, action_type, submission_id, history_id, issued_at)"
            " SELECT t, true, u, a, s, h, to_timestamp(i / 1000.0)"
            " FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])"
            " AS v(t, u, a, s, h, i)"
            " ON CONFLICT (token) DO NOTHING RETURNING token",
            (
                [c.token for c in candidates],
                [c.user_id for c in candidates],
                [c.action_type for c in candidates],
                [c.id for c in candidates],
                history_ids,
                [c.issued_at for c in candidates],
            ),
        )
    }
    fresh, conflicts = [], []
    for sub, history_id in zip(candidates, history_ids):
        if sub.token in inserted:
            inserted.discard(sub.token)  # a token twice in one batch counts once
            fresh.append((sub, history_id))
        else:
            conflicts.append(sub)
    if conflicts:
        _resolve_conflicts(conn, conflicts, outcomes)
    return fresh


def _score(conn: Connection, fresh: list[tuple[Submission, int]], locked: dict,
           action_types: dict[str, ActionType], limits: anomaly.Thresholds,
           outcomes: dict[str, Outcome]) -> tuple[list[HistoryRow], list[FlagRow]]:
    """Each claimed submission's new score and the anomaly rules that fire on it (they
    flag, never refuse); its outcome goes into ``outcomes``."""
    history, flags = [], []
    scores = {uid: user.current_score for uid, user in locked.items()}
    context = anomaly_context.load(conn, sorted({sub.user_id for sub, _ in fresh}), limits)
    for sub, history_id in fresh:
        before = scores[sub.user_id]
        score = scores[sub.user_id] = before + sub.score_delta
        history.append(HistoryRow(history_id, sub.user_id, sub.token, sub.action_type, sub.score_delta, score,
                                  sub.id, sub.accepted_at))
        action_type = action_types.get(sub.action_type) or ActionType(sub.action_type, sub.score_delta,
                                                                      sub.score_delta, 0)
        fired = anomaly.evaluate(
            context.observe(sub.user_id, action_type, sub.score_delta, sub.accepted_at - sub.issued_at,
                            sub.accepted_at, before),
            context.limits,
        )
        if fired:
            flags.append(FlagRow(sub.user_id, history_id, sub.id, sub.token, sub.score_delta,
                                 orjson.dumps(fired).decode()))
        outcomes[sub.id] = Outcome(sub, "applied", score=score, flagged=bool(fired), rules=fired or None)
    return history, flags


def _write_history(conn: Connection, history: list[HistoryRow], locked: dict,
                   counted_on: dict[int, list[str]]) -> dict[int, Entry]:
    """Insert the history rows (with the board periods each counted on) and move each user
    to their last row's total; return the users' new all-time entries."""
    if not history:
        return {}
    columns = list(map(list, zip(*history)))
    columns[-1] = [utc_ms(ms) for ms in columns[-1]]
    conn.exec_driver_sql(
        "INSERT INTO score_history (id, user_id, action_id, action_type, score_change, new_score, submission_id,"
        " accepted_at, counted_on)"
        " SELECT i, u, a, t, d, n, s, c, string_to_array(o, ',') FROM unnest(%s::bigint[], %s::bigint[], %s::text[],"
        " %s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::timestamptz[], %s::text[])"
        " AS v(i, u, a, t, d, n, s, c, o)",
        (*columns, [",".join(counted_on[row.id]) for row in history]),
    )
    last = {row.user_id: row for row in history}  # in order: each user's last row wins
    reached = conn.exec_driver_sql(
        "UPDATE users SET current_score = v.s, last_history_id = v.h, score_reached_at = clock_timestamp()"
        " FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS v(id, s, h)"
        " WHERE users.id = v.id RETURNING users.id, users.score_reached_at",
        (list(last), [row.new_score for row in last.values()], [row.id for row in last.values()]),
    )
    return {uid: Entry(last[uid].id, last[uid].new_score, ranking.member(uid, reached_at), locked[uid].username)
            for uid, reached_at in reached}


def _write_flags(conn: Connection, flags: list[FlagRow]) -> None:
    if flags:
        conn.exec_driver_sql(
            "INSERT INTO score_flags (user_id, history_id, submission_id, action_id, score_change, rules)"
            " SELECT u, h, s, a, d, r::jsonb FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[],"
            " %s::bigint[], %s::text[]) AS v(u, h, s, a, d, r)",
            tuple(map(list, zip(*flags))),
        )


def _resolve_conflicts(conn: Connection, conflicts: list[Submission], outcomes: dict[str, Outcome]) -> None:
    """A token already in PostgreSQL: ours from an earlier attempt (applied), or another's."""
    rows = {
        row.token: row
        for row in conn.exec_driver_sql(
            "SELECT t.token, t.submission_id, h.user_id, h.new_score, h.counted_on,"
            " EXISTS (SELECT 1 FROM score_flags f WHERE f.history_id = t.history_id) AS flagged"
            " FROM action_tokens t LEFT JOIN score_history h ON h.id = t.history_id"
            " WHERE t.token = ANY(%s)",
            ([c.token for c in conflicts],),
        )
    }
    replayed = [rows[sub.token] for sub in conflicts if sub.token in rows and rows[sub.token].submission_id == sub.id
                and rows[sub.token].new_score is not None]
    now_there = _scores_now(conn, replayed)
    for sub in conflicts:
        row = rows.get(sub.token)
        if row is not None and row.submission_id == sub.id and row.new_score is not None:
            # Applied by an earlier attempt: its places are read back (on the other boards,
            # the user's score there now: the batch that counted it is not known any more).
            places = [Counted(ALL_TIME_ID, ALL_TIME_KEY, row.new_score)] + [
                Counted(*where.split("/", 1), now_there[(*where.split("/", 1), row.user_id)])
                for where in row.counted_on or () if (*where.split("/", 1), row.user_id) in now_there]
            outcomes[sub.id] = Outcome(sub, "applied", score=row.new_score, flagged=row.flagged, replayed=True,
                                       places=places)
        else:
            outcomes[sub.id] = _rejected(sub, "token_used")


def _scores_now(conn: Connection, rows) -> dict[tuple[str, str, int], int]:
    """The current scores of the board periods (other than all-time) these history rows counted on."""
    wanted = {(*where.split("/", 1), row.user_id) for row in rows for where in row.counted_on or ()
              if not where.startswith(ALL_TIME_ID + "/")}
    if not wanted:
        return {}
    return {
        (r.board, r.period, r.user_id): r.score
        for r in conn.exec_driver_sql(
            "SELECT board, period, user_id, score FROM board_scores WHERE (board, period, user_id) IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]))",
            ([w[0] for w in wanted], [w[1] for w in wanted], [w[2] for w in wanted]),
        )
    }


def publish(submissions: Submissions, result: BatchResult, batch_id: str, result_ttl: int,
            board_ttl: int) -> tuple[int, bool]:
    """Move Redis forward after commit: the ranking, the board, each submission's result and
    event, and the batch settled (``batch_id`` "" for changes outside a batch).

    Returns:
        (board version, whether a top 10 changed).

    Raises:
        RankingNotReady: Redis lost (or never held) a board period's ranking; rebuild it,
            then publish again.
    """
    keys = submissions.keys
    # the all-time board first, and always (its cache, and every result's all-time rank)
    periods = {(ALL_TIME_ID, ALL_TIME_KEY): result.users, **result.entries}
    args: list = [keys.events_channel, result_ttl, board_ttl, keys.submission_prefix, keys.done_prefix, batch_id,
                  EVENTS_LOG_LENGTH, len(periods)]
    for (board, period), entries in periods.items():
        args += [board, period, keys.board_base(board, period), len(entries)]
        for uid, entry in entries.items():
            args += [uid, *entry]
    args.append(len(result.outcomes))
    for o in result.outcomes:
        args += [
            o.submission.id,
            o.submission.user_id,
            o.state,
            o.submission.score_delta,
            o.score,
            "true" if o.flagged else "false",
            orjson.dumps(o.error).decode() if o.error else "",
            len(o.places),
        ]
        for place in o.places:
            args += [place.board, place.period, place.score, "True" if place.first else ""]
    reply = submissions.scripts.publish(
        keys=[keys.usernames, keys.board_version, keys.events_log, *submissions.settle_keys(batch_id)],
        args=args,
    )
    if reply[0] == b"notready":
        raise RankingNotReady(reply[1].decode(), reply[2].decode())
    return int(reply[1]), int(reply[2]) > 0


def publish_ready(engine: Engine, submissions: Submissions, result: BatchResult, batch_id: str, result_ttl: int,
                  board_ttl: int) -> tuple[int, bool]:
    """``publish``; a board period whose ranking Redis lacks is rebuilt from PostgreSQL first
    (which already holds the change), one at a time, as often as there are such periods."""
    for _ in range(len(result.entries) + 1):
        try:
            return publish(submissions, result, batch_id, result_ttl, board_ttl)
        except RankingNotReady as missing:
            ranking.rebuild(engine, submissions.redis, submissions.scripts, submissions.keys, missing.board,
                            missing.period)
    return publish(submissions, result, batch_id, result_ttl, board_ttl)


def _report_flags(outcomes: list[Outcome]) -> None:
    """One security event per newly flagged submission."""
    for o in outcomes:
        if o.flagged and not o.replayed:
            sub = o.submission
            security_event("submission_flagged", user_id=sub.user_id, submission_id=sub.id,
                           request_id=sub.request_id, action_type=sub.action_type, score_delta=sub.score_delta,
                           rules=o.rules)


class RankingNotReady(Exception):
    """A board period's Redis ranking is missing (Redis restarted empty or was flushed, or
    the period is new to Redis): rebuild it from PostgreSQL.

    Attributes:
        board, period: the board period to rebuild.
    """

    def __init__(self, board: str = ALL_TIME_ID, period: str = ALL_TIME_KEY):
        super().__init__(f"the ranking of {board} {period} is not ready")
        self.board, self.period = board, period


@dataclass(frozen=True)
class Applier:
    """Everything a worker process needs to apply batches; built once at start."""

    engine: Engine
    redis: redis.Redis
    scripts: Scripts
    keys: Keys
    action_types: dict[str, ActionType]
    result_ttl: int
    board_ttl: int
    # How long a job keeps retrying a lost PostgreSQL or Redis connection before it
    # gives the batch back to RQ (stay well under the job timeout).
    transient_wait_s: float = 15.0
    limits: anomaly.Thresholds = field(default_factory=anomaly.Thresholds)
    boards: tuple[Board, ...] = DEFAULT_BOARDS

    @cached_property
    def submissions(self) -> Submissions:
        return Submissions(self.redis, self.scripts, self.keys)

    def apply_batch(self, batch_id: str) -> dict:
        """Seal the batch and apply it. Idempotent: safe to run again after any failure.

        Raises:
            BatchFailed: a failure other than a lost connection, unless the batch is already
                a split-off batch of one: its submissions are to be retried one by one.
            Exception: a connection still lost after ``transient_wait_s``, and any failure
                of a split-off batch, propagate (RQ retries the job).
        """
        subs = [s for s in self.submissions.seal(batch_id) if s.state in ("queued", "failed")]
        return self.apply_submissions(subs, batch_id)

    def apply_submissions(self, subs: list[Submission], batch_id: str) -> dict:
        if not subs:
            self.submissions.forget(batch_id)
            return {"batch_id": batch_id, "applied": 0, "rejected": 0, "version": None, "board_changed": False}
        started = time.perf_counter()
        ids = [s.id for s in subs]
        # on every later line of the job (a worker runs each job in a log context of its own)
        bind_contextvars(submission_ids=ids, request_ids=sorted({s.request_id for s in subs if s.request_id}))
        deadline = time.monotonic() + self.transient_wait_s
        try:
            self._retrying(lambda: self._hold_periods(subs), deadline)
            result = self._retrying(lambda: self._transaction(subs), deadline)
        except Exception as exc:
            metrics.APPLY_BATCHES.labels("error").inc()
            log.warning("apply transaction rolled back", extra={"batch_id": batch_id, "error": repr(exc)})
            if is_transient(exc) or jobspec.is_split_batch(batch_id):
                raise
            raise BatchFailed(ids, exc) from exc
        version, changed = self._retrying(lambda: self._publish_ready(result, batch_id), deadline)
        applied = sum(o.state == "applied" for o in result.outcomes)
        seconds = time.perf_counter() - started
        metrics.record_batch(result.outcomes, seconds)
        _report_flags(result.outcomes)
        log.info("batch applied", extra={"batch_id": batch_id, "size": len(subs), "applied": applied,
                                         "rejected": len(result.outcomes) - applied,
                                         "flagged": sum(o.flagged and not o.replayed for o in result.outcomes),
                                         "version": version, "seconds": round(seconds, 4)})
        return {"batch_id": batch_id, "applied": applied, "rejected": len(result.outcomes) - applied,
                "version": version, "board_changed": changed}

    def _hold_periods(self, subs: list[Submission]) -> None:
        """Make sure Redis holds the ranking of every board period the batch counts in before
        it commits: a ranking first loaded after the commit would already hold the batch, and
        the results' previous ranks would be lost."""
        with self.engine.connect() as conn:
            calendar = Calendar.load(conn, self.boards)
        wanted = sorted({(board.id, period.key) for sub in subs
                         for board, period in calendar.periods_at(utc_ms(sub.accepted_at))})
        pipe = self.redis.pipeline(transaction=False)
        for board, period in wanted:
            pipe.exists(self.keys.board_ready(board, period))
        for (board, period), ready in zip(wanted, pipe.execute()):
            if not ready:
                ranking.rebuild(self.engine, self.redis, self.scripts, self.keys, board, period)

    def _transaction(self, subs: list[Submission]) -> BatchResult:
        with self.engine.begin() as conn:
            return apply_in_transaction(conn, subs, self.action_types, self.limits, self.boards)

    def _publish_ready(self, result: BatchResult, batch_id: str) -> tuple[int, bool]:
        return publish_ready(self.engine, self.submissions, result, batch_id, self.result_ttl, self.board_ttl)

    @staticmethod
    def _retrying(step, deadline: float):
        """Run ``step``; while it fails on a lost connection and time is left, again."""
        delay = 0.2
        while True:
            try:
                return step()
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("connection lost; retrying", extra={"error": repr(exc), "in_s": delay})
                time.sleep(delay)
                delay = min(delay * 2, 3.0)

