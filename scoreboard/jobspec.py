"""How the apply job is enqueued, as plain data shared by the web and the workers.

The web enqueues jobs by dotted name and never imports worker code; both sides build
the RQ call from this one description.
"""

from __future__ import annotations

APPLY_JOB = "workers.jobs.apply_batch"
APPLY_FAILURE_CALLBACK = "workers.jobs.on_apply_failure"
# Attempts of an apply job before it lands in the failed registry. Every retry is
# immediate: RQ's scheduled retries wait for a worker holding RQ's scheduler lock, which
# can take minutes after that worker died. The job waits out lost connections itself
# (``Applier.transient_wait_s``), so a retry means the worker died or time ran out.
APPLY_RETRY_INTERVALS = (0,) * 8
# A submission split off a failed batch failed for a reason other than a lost
# connection: a few quick attempts, then the failed registry for an admin to see.
SPLIT_RETRY_INTERVALS = (0, 0)
APPLY_FAILURE_TTL = 30 * 24 * 3600


def is_split_batch(batch_id: str) -> bool:
    """Batches of one submission split off a failed batch are named ``<batch>-<submission>``."""
    return "-" in batch_id


def apply_job_id(batch_id: str) -> str:
    return f"apply-{batch_id}"


def apply_job_options(batch_id: str, job_timeout: int, prefix: str, request_id: str = "") -> dict:
    """Keyword arguments for ``Queue.enqueue`` besides the function and ``Retry``/``Callback``.

    ``request_id`` (of the request that opened the batch) goes into the job's ``meta``;
    the worker binds it to the job's log lines.
    """
    return {
        "job_id": apply_job_id(batch_id),
        "job_timeout": job_timeout,
        "result_ttl": 600,
        "failure_ttl": APPLY_FAILURE_TTL,
        "description": f"apply batch {batch_id}",
        "meta": {"prefix": prefix, "request_id": request_id} if request_id else {"prefix": prefix},
    }
