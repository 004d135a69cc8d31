"""``python -m scheduler``: the one process that enqueues the periodic jobs.

It is RQ's cron scheduler with the jobs of ``scheduler.cron``, plus what RQ's lacks:
settings from the environment, JSON logs, metrics on ``METRICS_PORT``, and a leader lock
in Redis, so that a second scheduler started by mistake waits on standby instead of
enqueueing every job twice (and takes over when the first one stops). A lost Redis
(restarted, or its primary moved by Sentinel) is waited out: RQ's loop would end on it.
"""

from __future__ import annotations

import os

# This process exports its own registry on its own port (see workers/__main__.py).
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import logging  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402

import redis as redis_lib  # noqa: E402
from redis import Redis  # noqa: E402
from rq.cron import CronScheduler  # noqa: E402

from scheduler import cron  # noqa: E402
from scoreboard import logs, metrics, startup  # noqa: E402
from scoreboard.redis_client import Keys, make_redis  # noqa: E402
from scoreboard.scripts import Scripts  # noqa: E402
from scoreboard.settings import Settings, SettingsError  # noqa: E402

# The leader renews its lock at least this often; a standby takes over within LEADER_TTL_S.
RENEW_S = 5
LEADER_TTL_S = 20

log = logging.getLogger("scheduler")
REDIS_LOST = (redis_lib.ConnectionError, redis_lib.TimeoutError)


class LeaderCronScheduler(CronScheduler):
    """RQ's cron scheduler, enqueueing only while it holds the leader lock."""

    def __init__(self, connection: Redis, keys: Keys, **kwargs):
        super().__init__(connection=connection, **kwargs)
        self.lock_key = keys.scheduler_leader
        self.owner = f"{self.name}:{secrets.token_hex(4)}"
        self.scripts = Scripts(connection)
        self.leading = False

    def lead(self) -> bool:
        """Take or renew the leader lock; True while this scheduler holds it."""
        leading = self.scripts.lead(keys=[self.lock_key], args=[self.owner, LEADER_TTL_S]) == 1
        if leading != self.leading:
            log.warning("leading: enqueueing the periodic jobs" if leading
                        else "on standby: another scheduler leads", extra={"scheduler": self.name})
            self.leading = leading
            metrics.SCHEDULER_LEADER.set(1 if leading else 0)
        return leading

    def enqueue_jobs(self):
        """Enqueue the jobs that are due while leading; none while Redis is lost (a job
        not enqueued stays due, and goes at the next turn)."""
        try:
            if not self.lead():
                return []
            enqueued = super().enqueue_jobs()
        except REDIS_LOST as exc:
            log.warning("Redis lost; the scheduler waits for it", extra={"error": repr(exc)})
            return []
        for job in enqueued:
            metrics.SCHEDULER_ENQUEUED.labels(job.func_name.rsplit(".", 1)[-1]).inc()
        return enqueued

    def save(self, pipeline=None) -> None:
        try:
            super().save(pipeline)
        except REDIS_LOST as exc:
            log.warning("Redis lost; the scheduler waits for it", extra={"error": repr(exc)})

    def heartbeat(self) -> None:
        try:
            super().heartbeat()
        except REDIS_LOST as exc:
            log.warning("Redis lost; the scheduler waits for it", extra={"error": repr(exc)})

    def calculate_sleep_interval(self) -> float:
        return min(super().calculate_sleep_interval(), RENEW_S)

    def register_death(self, pipeline=None) -> None:
        """Hand the lead over at once when stopping."""
        try:
            self.scripts.unlock(keys=[self.lock_key], args=[self.owner])
        finally:
            super().register_death(pipeline)


def build(settings: Settings) -> LeaderCronScheduler:
    """The scheduler with the jobs of ``scheduler.cron`` registered."""
    scheduler = LeaderCronScheduler(make_redis(settings), Keys(settings.redis_prefix),
                                    logging_level=settings.log_level)
    cron.register_all(scheduler, settings.batching.maintenance_queue)
    return scheduler


def main() -> int:
    try:
        settings = Settings.from_env()
        # the jobs run on workers: the scheduler itself needs Redis only
        startup.check(settings, database=False)
    except (SettingsError, startup.StartupError) as exc:
        print(f"scheduler: cannot start: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, "scheduler")
    metrics.serve(settings.metrics.port, settings.metrics.host, settings.metrics.token)
    metrics.SCHEDULER_LEADER.set(0)
    build(settings).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
