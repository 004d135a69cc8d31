"""The periodic jobs' bodies (the scheduler's ``scheduler/cron.py`` says when each runs).
Each runs on a worker, beside the apply job, is quick, and is safe to run twice.

Each records a report of its last run in Redis (``Keys.maintenance_report``); the web's
``/metrics`` exports when each job last finished and the ranking drift found.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime, timezone

import orjson
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from scoreboard import closing, jobspec, metrics, purge, ranking, reconcile
from scoreboard.periods import Calendar
from workers import context
from workers.enqueue import enqueue_apply

log = logging.getLogger(__name__)


def single_run(func=None, *, timeout: int = 120):
    """Run the job only where no other run of it is under way (``rq cron`` restarted, or
    two workers holding two enqueued runs); a run that finds one going is skipped.

    Args:
        timeout: seconds the lock lives if a run dies holding it (at least the job timeout).
    """
    if func is None:
        return functools.partial(single_run, timeout=timeout)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        applier = context.applier()
        lock = applier.redis.lock(applier.keys.job_lock(func.__name__), timeout=timeout, blocking=False)
        if not lock.acquire():
            log.info("periodic job skipped: another run is under way", extra={"job": func.__name__})
            return {"skipped": True}
        try:
            return func(*args, **kwargs)
        finally:
            try:
                lock.release()
            except Exception:  # expired meanwhile: nothing to release
                pass

    return wrapper


def _record(job: str, report: dict) -> dict:
    """Keep the report of this run for the metrics, and return it (the job's result)."""
    applier = context.applier()
    applier.redis.hset(applier.keys.maintenance_report, job, orjson.dumps({**report, "at": time.time()}))
    return report


# A batch still waiting this long has lost its job when the job is missing (a web process
# killed between accept and enqueue) or marked queued but in no queue (a worker killed
# between taking it off the queue and starting it): enqueue it again.
ORPHAN_AFTER_S = 15


# The lock lives about one interval: a worker killed during a run holds it no longer.
@single_run(timeout=10)
def recover_batches() -> dict:
    """Retry apply jobs abandoned by dead workers, and enqueue batches whose job was lost.

    Batches older than the failed-job lifetime are left to ``purge_expired``. Running an
    apply job twice is harmless: PostgreSQL applies each token once.
    """
    applier, settings = context.applier(), context.settings()
    r, keys = applier.redis, applier.keys
    queue = Queue(settings.batching.queue, connection=r)
    StartedJobRegistry(queue=queue).cleanup()
    now = time.time()
    oldest_ms, cutoff_ms = (now - jobspec.APPLY_FAILURE_TTL) * 1000, (now - ORPHAN_AFTER_S) * 1000
    waiting = None
    requeued = 0
    for raw in r.zrangebyscore(keys.batches, oldest_ms, cutoff_ms, start=0, num=1000):
        batch_id = raw.decode()
        job = Job.fetch_many([jobspec.apply_job_id(batch_id)], connection=r)[0]
        if job is None:
            enqueue_apply(queue, batch_id, settings.batching.job_timeout, keys.prefix)
        elif job.get_status(refresh=False) == JobStatus.QUEUED:
            waiting = set(queue.get_job_ids()) if waiting is None else waiting
            if job.id in waiting:
                continue
            queue.enqueue_job(job)
        else:
            continue
        requeued += 1
    if requeued:
        log.warning("lost apply jobs enqueued again", extra={"batches": requeued})
    return _record("recover_batches", {"orphans": requeued})


@single_run(timeout=30)
def warm_board() -> dict:
    """Rebuild each board's current ranking if Redis lost it (or the period is new), and
    refill its cached top 100 and top 10."""
    applier = context.applier()
    with applier.engine.connect() as conn:
        calendar = Calendar.load(conn, applier.boards)
    calendar.publish_seasons(applier.redis, applier.keys)
    now, ready = datetime.now(timezone.utc), []
    for board, period in calendar.periods_at(now):
        if ranking.rebuild(applier.engine, applier.redis, applier.scripts, applier.keys, board.id, period.key):
            ranking.refresh(applier.scripts, applier.keys, board.id, period.key, applier.board_ttl, force=True)
            ready.append(f"{board.id}/{period.key}")
    return _record("warm_board", {"ready": ready})


@single_run(timeout=60)
def close_periods() -> dict:
    """Close the board periods that ended once every submission accepted before their end
    is applied or failed: final standings, announced to the board's viewers."""
    applier = context.applier()
    report = closing.close_due(applier.engine, applier.redis, applier.scripts, applier.keys, applier.boards,
                               applier.board_ttl)
    return _record("close_periods", report.as_dict())


@single_run(timeout=600)
def reconcile_ranking() -> dict:
    """Compare the Redis ranking with PostgreSQL, correct drift (rebuild it if it is gone)."""
    applier = context.applier()
    report = reconcile.reconcile(applier.engine, applier.redis, applier.scripts, applier.keys, applier.board_ttl)
    metrics.RANKING_FIXES.inc(report.fixed + report.orphans_removed)
    return _record("reconcile_ranking", report.as_dict())


@single_run(timeout=600)
def purge_expired() -> dict:
    """Give every Redis record its expiry; fail submissions and batches that were lost."""
    applier, settings = context.applier(), context.settings()
    lifetimes = purge.Lifetimes(
        action_token=purge.token_lifetime(settings.actions.token_ttl, settings.actions.clock_skew),
        result=settings.batching.result_ttl,
        failed=jobspec.APPLY_FAILURE_TTL,
    )
    return _record("purge_expired", purge.purge(applier.submissions, lifetimes).as_dict())
