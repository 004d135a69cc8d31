"""The jobs: thin, ids in, a domain call, out."""

from __future__ import annotations

import logging

import orjson
from rq import Queue, get_current_job

from scoreboard.apply import BatchFailed
from scoreboard.redis_client import Keys
from workers import context
from workers.enqueue import split_batch

log = logging.getLogger(__name__)


def apply_batch(batch_id: str) -> dict:
    """Apply one batch of accepted submissions (retried by RQ on failure)."""
    applier = context.applier()
    try:
        return applier.apply_batch(batch_id)
    except BatchFailed as failed:
        job = get_current_job()
        queue = Queue(job.origin, connection=job.connection)
        log.warning("batch split after a failure", extra={"batch_id": batch_id,
                                                          "submission_ids": failed.submission_ids})
        split_batch(job.connection, queue, applier, batch_id, failed.submission_ids, job.timeout)
        return {"batch_id": batch_id, "split": len(failed.submission_ids)}


def on_apply_failure(job, connection, exc_type, exc_value, tb) -> None:
    """After the last attempt only: mark the batch's submissions failed for their clients."""
    if job.retries_left:
        return
    keys = Keys(job.meta.get("prefix", "sb:"))
    batch_id = job.args[0]
    error = orjson.dumps({"code": "apply_failed", "message": f"The submission could not be applied: {exc_value}"})
    ids = connection.lrange(keys.batch(batch_id), 0, -1)
    pipe = connection.pipeline(transaction=False)
    for sid in ids:
        pipe.hset(keys.submission(sid.decode()), mapping={"state": "failed", "error": error})
    pipe.execute()
    log.error("apply job failed for good", extra={"batch_id": batch_id, "job_id": job.id,
                                                   "submission_ids": [i.decode() for i in ids]})
