"""``python -m workers``: an RQ worker for the apply and maintenance queues.

It works in-process (no fork per job): a batch job is short, and the engine and its
connection pool live as long as the process. A worker killed mid-job leaves its job in
RQ's started registry; once its heartbeat lapses (job timeout + a few seconds) the
registry cleanup retries it, and PostgreSQL makes sure nothing is counted twice.
"""

from __future__ import annotations

import logging
import os
import sys

from redis import Redis
from rq import Queue, SimpleWorker

from scoreboard import logs, startup
from scoreboard.apply import Applier
from scoreboard.db import make_engine
from scoreboard.redis_client import Keys, make_redis
from scoreboard.scripts import Scripts
from scoreboard.settings import Settings, SettingsError
from workers import context

HEARTBEAT_MARGIN_S = 5


class ScoreWorker(SimpleWorker):
    """An in-process worker whose abandoned jobs are noticed soon after their timeout."""

    def get_heartbeat_ttl(self, job) -> int:
        return int(job.timeout or self.job_monitoring_interval) + HEARTBEAT_MARGIN_S


def build(settings: Settings) -> tuple[ScoreWorker, Redis]:
    """Create the worker and install the jobs' context from ``settings``."""
    redis = make_redis(settings)
    context.install(
        Applier(
            engine=make_engine(settings),
            redis=redis,
            scripts=Scripts(redis),
            keys=Keys(settings.redis_prefix),
            action_types=settings.action_types_by_name,
            result_ttl=settings.result_ttl,
            board_ttl=settings.board_cache_ttl,
        ),
        settings,
    )
    queues = [Queue(name, connection=redis) for name in (settings.queue_name, settings.maintenance_queue_name)]
    worker = ScoreWorker(queues, connection=redis, maintenance_interval=30, job_monitoring_interval=10)
    return worker, redis


def main() -> int:
    try:
        settings = Settings.from_env()
        startup.check(settings, wait=float(os.environ.get("STARTUP_WAIT", "30")))
    except (SettingsError, startup.StartupError) as exc:
        print(f"worker: cannot start: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, "worker")
    worker, _ = build(settings)
    logging.getLogger(__name__).info("worker starting", extra={"queues": worker.queue_names()})
    worker.work(with_scheduler=True, logging_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
