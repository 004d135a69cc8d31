"""Periodic jobs. Each runs on a worker, is quick, and is safe to run twice."""

from __future__ import annotations

import functools
import logging
import time

from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry

from scoreboard import jobspec, ranking
from workers import context
from workers.enqueue import enqueue_apply

log = logging.getLogger(__name__)


def single_run(func):
    """Run the job only where no other run of it is under way (``rq cron`` restarted, or
    two workers holding two enqueued runs); a run that finds one going is skipped."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        applier = context.applier()
        lock = applier.redis.lock(f"{applier.keys.prefix}cron:{func.__name__}", timeout=120, blocking=False)
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

# A batch with no apply job this long after it opened was lost between the web's
# accept and its enqueue (a web process killed in between): enqueue it again.
ORPHAN_AFTER_S = 15


@single_run
def recover_batches() -> dict:
    """Retry apply jobs abandoned by dead workers, and enqueue batches that have no job."""
    applier, settings = context.applier(), context.settings()
    r, keys = applier.redis, applier.keys
    queue = Queue(settings.queue_name, connection=r)
    StartedJobRegistry(queue=queue).cleanup()
    cutoff_ms = (time.time() - ORPHAN_AFTER_S) * 1000
    requeued = 0
    for raw in r.zrangebyscore(keys.batches, 0, cutoff_ms, start=0, num=1000):
        batch_id = raw.decode()
        if not Job.exists(jobspec.apply_job_id(batch_id), connection=r):
            enqueue_apply(queue, batch_id, settings.apply_job_timeout, keys.prefix)
            requeued += 1
    if requeued:
        log.warning("orphan batches enqueued again", extra={"batches": requeued})
    return {"orphans": requeued}


@single_run
def warm_board() -> dict:
    """Rebuild the ranking if Redis lost it, and refill the cached board."""
    applier = context.applier()
    ready = ranking.rebuild(applier.engine, applier.redis, applier.scripts, applier.keys)
    keys = applier.keys
    applier.scripts.refresh(
        keys=[keys.ranking, keys.usernames, keys.ranking_ready, keys.board_version, keys.board_top, keys.board_top10],
        args=[applier.board_ttl, "force"],
    )
    return {"ready": ready}
