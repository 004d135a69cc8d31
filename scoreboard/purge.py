"""Purge: make sure nothing the service keeps in Redis outlives its use.

Most Redis state expires by itself (action tokens, results, done signals, rate limits);
this pass catches what did not get its expiry, and what was left behind:

- an action-token record without a TTL gets the token's lifetime again;
- a settled submission (applied, rejected) without a TTL gets ``RESULT_TTL``; a failed
  one gets the failed job's lifetime, so requeueing it from the dashboard still works;
- a submission still ``queued`` whose batch is gone, accepted over an hour ago, can never
  be applied: it becomes ``failed`` (its client sees it) and expires;
- a batch older than the failed-job lifetime (+1 day) is dropped with its submissions:
  its job expired from the failed registry and nobody can requeue it any more.

PostgreSQL rows are kept: ``action_tokens`` is the proof that each token counted once,
``score_history`` and ``score_flags`` are the record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from scoreboard.action_tokens import EXPIRED_GRACE_S, now_ms
from scoreboard.submissions import Submissions

log = logging.getLogger(__name__)

SCAN_COUNT = 1000
ORPHAN_AFTER_S = 3600
STALE_BATCH_MARGIN_S = 24 * 3600
DONE_TTL_S = 60
LOST = orjson.dumps({"code": "apply_failed", "message": "The submission was lost before it could be applied."})


@dataclass
class Report:
    """What one purge run changed."""

    tokens_expiring: int = 0
    submissions_expiring: int = 0
    submissions_lost: int = 0
    done_expiring: int = 0
    batches_dropped: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Lifetimes:
    """Seconds each kind of record may live."""

    action_token: int
    result: int
    failed: int


def purge(submissions: Submissions, lifetimes: Lifetimes, now: int | None = None) -> Report:
    """One pass over the service's Redis keys (SCAN, in chunks). Safe to run twice.

    Args:
        submissions: the accepted submissions (their Redis connection and keys).
        lifetimes: the TTLs to give (``ACTION_TOKEN_TTL`` + skew + grace, ``RESULT_TTL``,
            the failed-job lifetime).
        now: unix ms (default: now).
    """
    r, keys = submissions.redis, submissions.keys
    now = now_ms() if now is None else now
    report = Report()
    r.unlink(*keys.legacy_ranking)  # the one all-time ranking of before boards, rebuilt per board period
    _drop_stale_batches(submissions, lifetimes, now, report)
    prefixes = (keys.action_token(""), keys.submission_prefix, keys.done_prefix)
    chunk: list[bytes] = []
    for key in r.scan_iter(match=f"{keys.prefix}*", count=SCAN_COUNT):
        if key.decode().startswith(prefixes):
            chunk.append(key)
            if len(chunk) >= SCAN_COUNT:
                _settle(submissions, chunk, lifetimes, now, report)
                chunk = []
    if chunk:
        _settle(submissions, chunk, lifetimes, now, report)
    return report


def _settle(submissions: Submissions, names: list[bytes], lifetimes: Lifetimes, now: int, report: Report) -> None:
    r, keys = submissions.redis, submissions.keys
    pipe = r.pipeline(transaction=False)
    for name in names:
        pipe.ttl(name)
    forever = [name.decode() for name, ttl in zip(names, pipe.execute()) if ttl == -1]
    if not forever:
        return
    subs = [k for k in forever if k.startswith(keys.submission_prefix)]
    pipe = r.pipeline(transaction=False)
    for key in forever:
        if key.startswith(keys.action_token("")):
            pipe.expire(key, lifetimes.action_token)
            report.tokens_expiring += 1
        elif key.startswith(keys.done_prefix):
            pipe.expire(key, DONE_TTL_S)
            report.done_expiring += 1
    pipe.execute()
    if subs:
        _settle_submissions(submissions, subs, lifetimes, now, report)


def _settle_submissions(submissions: Submissions, subs: list[str], lifetimes: Lifetimes, now: int,
                        report: Report) -> None:
    r, keys = submissions.redis, submissions.keys
    pipe = r.pipeline(transaction=False)
    for key in subs:
        pipe.hmget(key, "state", "batch", "accepted_at")
    fields = pipe.execute()
    pipe = r.pipeline(transaction=False)
    for key, (state, batch, accepted_at) in zip(subs, fields):
        pipe.exists(keys.batch((batch or b"").decode()))
        pipe.zscore(keys.batches, (batch or b"").decode())
    batch_state = pipe.execute()
    pipe = r.pipeline(transaction=False)
    lost = []
    for i, (key, (state, batch, accepted_at)) in enumerate(zip(subs, fields)):
        state = (state or b"").decode()
        if state in ("applied", "rejected"):
            pipe.expire(key, lifetimes.result)
            report.submissions_expiring += 1
        elif state == "failed":
            pipe.expire(key, lifetimes.failed)
            report.submissions_expiring += 1
        elif state == "queued":
            batch_alive = batch_state[2 * i] or batch_state[2 * i + 1] is not None
            old = int(accepted_at or 0) < now - ORPHAN_AFTER_S * 1000
            if not batch_alive and old:
                lost.append(key)
    pipe.execute()
    if lost:
        submissions.fail_lost(lost, LOST, lifetimes.result)
        report.submissions_lost += len(lost)
        log.warning("lost submissions marked failed", extra={"submissions": len(lost)})


def _drop_stale_batches(submissions: Submissions, lifetimes: Lifetimes, now: int, report: Report) -> None:
    cutoff = now - (lifetimes.failed + STALE_BATCH_MARGIN_S) * 1000
    for batches in (submissions.keys.batches, submissions.keys.batches_failed):
        for raw in submissions.redis.zrangebyscore(batches, 0, cutoff, start=0, num=SCAN_COUNT):
            submissions.drop(raw.decode(), LOST, lifetimes.result)
            report.batches_dropped += 1
    if report.batches_dropped:
        log.warning("stale batches dropped", extra={"batches": report.batches_dropped})


def token_lifetime(action_token_ttl: int, clock_skew: int) -> int:
    """How long an action-token record lives (as ``action_tokens.issue`` sets it)."""
    return action_token_ttl + clock_skew + EXPIRED_GRACE_S
