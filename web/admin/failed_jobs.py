"""Failed apply jobs, described by what they hold: the submissions of their batch and the
players who sent them (the RQ dashboard names a job by its batch id alone).

A job lands in the failed registry of the scores queue after its last attempt
(``workers.jobs.on_apply_failure`` has then marked its submissions failed); a batch split
after a failure leaves one failed job per submission that still failed alone.
"""

from __future__ import annotations

import re
from datetime import datetime

import redis
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy.engine import Engine

from scoreboard import accounts, jobspec
from scoreboard.submissions import Submissions
from web.admin.dashboard import PREFIX as DASHBOARD


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?::\s|$)")


def _exception_line(text: str | None) -> str:
    """The exception's own line of a traceback (``module.Error: message``): not the frames
    (indented), nor what SQLAlchemy adds below it (the statement, its parameters, a link)."""
    lines = [line.rstrip() for line in (text or "").splitlines()]
    found = [line for line in lines if _EXCEPTION_LINE.match(line) and line != "Traceback (most recent call last):"]
    return (found[-1] if found else next((line for line in reversed(lines) if line.strip()), ""))[:500]


def failed_apply_jobs(r: redis.Redis, submissions: Submissions, engine: Engine, queue_name: str,
                      limit: int) -> tuple[list[dict], int]:
    """The newest failed apply jobs of ``queue_name``, at most ``limit``, and how many there are.

    Args:
        r: the Redis holding RQ's keys.
        submissions: the accepted submissions and their batches.
        engine: where to read usernames (the primary, or the replica router).
        queue_name: the scores queue.
        limit: most jobs to describe.

    Returns:
        ``([{"job_id", "batch_id", "failed_at", "error", "dashboard_url", "submissions":
        [{"job_id", "user_id", "username", "action_type", "score_delta", "accepted_at",
        "state"}]}], total)``; ``failed_at`` in unix ms.
    """
    registry = FailedJobRegistry(queue_name, connection=r)
    total = registry.count
    ids = registry.get_job_ids(0, limit - 1, desc=True) if limit > 0 else []
    jobs = [j for j in Job.fetch_many(ids, connection=r) if j is not None and j.func_name == jobspec.APPLY_JOB]
    batches = [str(job.args[0]) if job.args else "" for job in jobs]
    held = submissions.held(batches)
    names = accounts.usernames(engine, {s.user_id for batch in held for s in batch})
    described = []
    for job, batch_id, batch in zip(jobs, batches, held):
        result = job.latest_result()
        described.append({
            "job_id": job.id,
            "batch_id": batch_id,
            "failed_at": _ms(job.ended_at or (result.created_at if result else None)),
            "error": _exception_line(result.exc_string if result else None),
            "dashboard_url": f"{DASHBOARD}/0/view/job/{job.id}",
            "submissions": [
                {"job_id": s.id, "user_id": s.user_id, "username": names.get(s.user_id),
                 "action_type": s.action_type, "score_delta": s.score_delta, "accepted_at": s.accepted_at,
                 "state": s.state}
                for s in batch
            ],
        })
    return described, total
