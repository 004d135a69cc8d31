"""The jobs: thin, ids in, a domain call, out."""

from __future__ import annotations

import logging

import orjson
from rq import Queue, get_current_job
from structlog.contextvars import bind_contextvars

from scoreboard import jobspec
from scoreboard.apply import BatchFailed
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from scoreboard.submissions import Submissions
from workers import context
from workers.enqueue import enqueue_apply

log = logging.getLogger(__name__)


def apply_batch(batch_id: str) -> dict:
    """Apply one batch of accepted submissions (retried by RQ on failure)."""
    bind_contextvars(batch_id=batch_id)
    applier = context.applier()
    try:
        return applier.apply_batch(batch_id)
    except BatchFailed as failed:
        job = get_current_job()
        queue = Queue(job.origin, connection=job.connection)
        log.warning("batch split after a failure", extra={"batch_id": batch_id,
                                                          "submission_ids": failed.submission_ids})
        for new_id in applier.submissions.split(batch_id, failed.submission_ids):
            enqueue_apply(queue, new_id, job.timeout, applier.keys.prefix, intervals=jobspec.SPLIT_RETRY_INTERVALS)
        return {"batch_id": batch_id, "split": len(failed.submission_ids)}


def on_apply_failure(job, connection, exc_type, exc_value, tb) -> None:
    """After the last attempt only: mark the batch's submissions failed for their clients."""
    if job.retries_left:
        return
    batch_id = job.args[0]
    error = orjson.dumps({"code": "apply_failed", "message": f"The submission could not be applied: {exc_value}"})
    submissions = Submissions(connection, Scripts(connection), Keys(job.meta.get("prefix", "sb:")))
    ids = submissions.mark_failed(batch_id, error)
    log.error("apply job failed for good", extra={"batch_id": batch_id, "rq_job_id": job.id,
                                                   "submission_ids": ids})
