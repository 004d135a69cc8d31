"""The one list of periodic jobs: ``rq cron scheduler.cron``. Run exactly one scheduler."""

from rq import cron

from scheduler.jobs import recover_batches, warm_board

QUEUE = "maintenance"

JOBS = (
    # (function, interval in seconds)
    (recover_batches, 10),
    (warm_board, 30),
)

for func, interval in JOBS:
    cron.register(func, QUEUE, interval=interval, job_timeout=60, result_ttl=300, failure_ttl=24 * 3600)
