"""The one list of periodic jobs, for ``python -m scheduler`` (or ``rq cron scheduler.cron``).

Run exactly one scheduler: ``python -m scheduler`` takes a leader lock, so a second one
waits on standby. The README's table of periodic jobs lists these, and a test checks it.
"""

import os

from rq import cron

from scheduler.jobs import purge_expired, reconcile_ranking, recover_batches, warm_board

# Read once, when the scheduler loads this list (the workers use the same setting).
QUEUE = os.environ.get("MAINTENANCE_QUEUE_NAME", "maintenance")

JOBS = (
    # (function, every N seconds, job timeout in seconds)
    (recover_batches, 10, 60),
    (warm_board, 30, 300),
    (reconcile_ranking, 300, 600),
    (purge_expired, 600, 600),
)

for func, interval, timeout in JOBS:
    cron.register(func, QUEUE, interval=interval, job_timeout=timeout, result_ttl=300, failure_ttl=24 * 3600)
