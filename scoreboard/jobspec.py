"""How the apply job is enqueued, as plain data shared by the web and the workers.

The web enqueues jobs by dotted name and never imports worker code; both sides build
the RQ call from this one description.
"""

from __future__ import annotations

APPLY_JOB = "workers.jobs.apply_batch"
APPLY_FAILURE_CALLBACK = "workers.jobs.on_apply_failure"
# Waits between the attempts of an apply job before it lands in the failed registry.
# The first retry is immediate (no scheduler needed), so an abandoned job resumes at once.
APPLY_RETRY_INTERVALS = (0, 2, 5, 10, 30, 60)
# A submission split off a failed batch failed for a reason other than a lost
# connection: a few quick attempts, then the failed registry for an admin to see.
SPLIT_RETRY_INTERVALS = (1, 2)
APPLY_FAILURE_TTL = 30 * 24 * 3600


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
