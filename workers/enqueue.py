"""Enqueueing apply jobs (used by the jobs themselves when a batch is split)."""

from __future__ import annotations

import redis
from rq import Callback, Queue, Retry

from scoreboard import jobspec


def enqueue_apply(queue: Queue, batch_id: str, job_timeout: int, prefix: str,
                  intervals: tuple[int, ...] = jobspec.APPLY_RETRY_INTERVALS):
    """Enqueue the apply job of ``batch_id`` (idempotent on the job id)."""
    return queue.enqueue(
        jobspec.APPLY_JOB,
        batch_id,
        retry=Retry(max=len(intervals), interval=list(intervals)),
        on_failure=Callback(jobspec.APPLY_FAILURE_CALLBACK),
        **jobspec.apply_job_options(batch_id, job_timeout, prefix),
    )


def split_batch(r: redis.Redis, queue: Queue, applier, batch_id: str, submission_ids: list[str], job_timeout: int):
    """Give each submission of a failed batch its own batch and apply job."""
    keys = applier.keys
    for sid in submission_ids:
        new_id = f"{batch_id}-{sid[:12]}"
        pipe = r.pipeline(transaction=True)
        pipe.delete(keys.batch(new_id))
        pipe.rpush(keys.batch(new_id), sid)
        pipe.hset(keys.submission(sid), "batch", new_id)
        pipe.zadd(keys.batches, {new_id: r.time()[0] * 1000})
        pipe.execute()
        enqueue_apply(queue, new_id, job_timeout, keys.prefix, jobspec.SPLIT_RETRY_INTERVALS)
    applier.forget_batch(batch_id)
