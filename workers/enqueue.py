"""Enqueueing an apply job: the one way, used by the web (a new batch), the workers (a
split batch) and the periodic recovery (a lost job).

This is the one module of ``workers`` that the web imports: it holds no job code, only
the RQ call built from ``scoreboard.jobspec``; the job itself is named by its dotted path.
"""

from __future__ import annotations

from rq import Callback, Queue, Retry
from rq.job import Job

from scoreboard import jobspec


def enqueue_apply(queue: Queue, batch_id: str, job_timeout: int, prefix: str, request_id: str = "",
                  intervals: tuple[int, ...] = jobspec.APPLY_RETRY_INTERVALS) -> Job:
    """Enqueue the apply job of ``batch_id`` (idempotent on the job id).

    Args:
        queue: the apply queue.
        job_timeout: seconds the job may run.
        prefix: the Redis key prefix of the service (kept in the job's meta).
        request_id: the request that opened the batch, bound to the job's log lines.
        intervals: RQ's retry intervals (one attempt more than their count).
    """
    return queue.enqueue(
        jobspec.APPLY_JOB,
        batch_id,
        retry=Retry(max=len(intervals), interval=list(intervals)),
        on_failure=Callback(jobspec.APPLY_FAILURE_CALLBACK),
        **jobspec.apply_job_options(batch_id, job_timeout, prefix, request_id=request_id),
    )
