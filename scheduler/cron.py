"""The one list of periodic jobs: what runs, how often, with what time limit.

``python -m scheduler`` registers them with RQ's cron scheduler on the maintenance queue
(``MAINTENANCE_QUEUE_NAME``); the job bodies live with the workers
(``workers/maintenance.py``). The README's table of periodic jobs lists these, and a test
checks that they agree.
"""

from rq.cron import CronScheduler

from workers.maintenance import close_periods, purge_expired, reconcile_ranking, recover_batches, warm_board

JOBS = (
    # (function, every N seconds, job timeout in seconds)
    (recover_batches, 10, 60),
    (close_periods, 5, 60),
    (warm_board, 30, 300),
    (reconcile_ranking, 300, 600),
    (purge_expired, 600, 600),
)


def register_all(scheduler: CronScheduler, queue: str) -> None:
    """Register every job of ``JOBS`` with ``scheduler``, to be enqueued on ``queue``."""
    for func, interval, timeout in JOBS:
        scheduler.register(func, queue, interval=interval, job_timeout=timeout, result_ttl=300,
                           failure_ttl=24 * 3600)
