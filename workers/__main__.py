"""``python -m workers``: an RQ worker for the apply and maintenance queues.

It works in-process (no fork per job): a batch job is short, and the engine and its
connection pool live as long as the process. A worker killed mid-job leaves its job in
RQ's started registry; once its heartbeat lapses (job timeout + a few seconds) the
registry cleanup retries it, and PostgreSQL makes sure nothing is counted twice.

A lost Redis (restarted, or its primary moved by Sentinel) is waited out, never the end of
the worker: RQ's loop ends on any error outside its wait for jobs, so each of its other
steps here logs the loss, pauses a second and lets the loop go on; the next Redis call
finds the server again (behind a Sentinel, the new primary). A job cut short that way stays
in RQ's started registry and is retried like one of a killed worker.

With ``METRICS_PORT`` set, the worker serves its own Prometheus metrics on that port
(one port per worker process; see docs/operations.md, "Metrics").
"""

from __future__ import annotations

import os

# This process exports its own registry on its own port; a PROMETHEUS_MULTIPROC_DIR meant
# for the web must not send its figures to files. prometheus_client reads it at import.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import contextvars  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import redis as redis_lib  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Queue, SimpleWorker, worker_registration  # noqa: E402
from structlog.contextvars import bind_contextvars  # noqa: E402

from scoreboard import logs, metrics, startup  # noqa: E402
from scoreboard.apply import Applier  # noqa: E402
from scoreboard.db import instrument_pool, make_engine  # noqa: E402
from scoreboard.redis_client import Keys, make_redis  # noqa: E402
from scoreboard.scripts import Scripts  # noqa: E402
from scoreboard.settings import Settings, SettingsError  # noqa: E402
from workers import context  # noqa: E402

HEARTBEAT_MARGIN_S = 5
REDIS_LOST = (redis_lib.ConnectionError, redis_lib.TimeoutError)


class ScoreWorker(SimpleWorker):
    """An in-process worker whose abandoned jobs are noticed soon after their timeout, and
    that outlives a lost Redis."""

    # While Redis is lost, RQ asks again after 1, 2, 2... s (its default grows to a minute):
    # back at work within seconds of a failover.
    max_connection_wait_time = 2.0

    @contextmanager
    def _redis_may_be_lost(self, step: str):
        try:
            yield
        except REDIS_LOST as exc:
            self.log.warning("Redis lost; the worker waits for it", extra={"step": step, "error": repr(exc)})
            time.sleep(1)

    def check_for_suspension(self, burst: bool):
        with self._redis_may_be_lost("suspension check"):
            super().check_for_suspension(burst)

    def run_maintenance_tasks(self):
        with self._redis_may_be_lost("maintenance"):
            super().run_maintenance_tasks()

    def execute_job(self, job, queue):
        with self._redis_may_be_lost("job"):
            super().execute_job(job, queue)

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        """RQ's wait for a job (it rides out a refused connection itself), riding out a
        timed-out one too: a primary whose machine is gone answers nothing at all."""
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except redis_lib.TimeoutError as exc:
                self.log.warning("Redis lost; the worker waits for it", extra={"step": "dequeue", "error": repr(exc)})
                time.sleep(1)

    def get_heartbeat_ttl(self, job) -> int:
        return int(job.timeout or self.job_monitoring_interval) + HEARTBEAT_MARGIN_S

    def perform_job(self, job, queue) -> bool:
        """Run the job in a log context of its own, and count it."""
        name = (job.func_name or "unknown").rsplit(".", 1)[-1]
        started = time.perf_counter()
        ok = contextvars.copy_context().run(self._perform_bound, job, queue)
        metrics.JOBS.labels(name, "ok" if ok else "failed").inc()
        metrics.JOB_DURATION.labels(name).observe(time.perf_counter() - started)
        return ok

    def _perform_bound(self, job, queue) -> bool:
        """``rq_job_id`` and the opening request's ``request_id`` on every line of the job;
        what the job binds itself (batch and submission ids) ends with the context."""
        request_id = (job.meta or {}).get("request_id")
        bind_contextvars(rq_job_id=job.id, **({"request_id": request_id} if request_id else {}))
        return super().perform_job(job, queue)

    def heartbeat(self, timeout=None, pipeline=None):
        """Also register again when Redis lost the worker (flushed, or restarted empty).

        RQ's own heartbeat is two round trips (HSET, EXPIRE); with the check for a lost
        registration it goes in one pipeline: a job takes three such heartbeats.
        """
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        registered = True
        with self._redis_may_be_lost("heartbeat"), self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipe)
            pipe.hexists(self.key, "birth")
            registered = pipe.execute()[-1]
        if not registered:
            with self.connection.pipeline() as pipe:
                pipe.hset(self.key, mapping=self.serialize())
                worker_registration.register(self, pipe)
                pipe.expire(self.key, timeout or self.worker_ttl + 60)
                pipe.execute()
            self.log.warning("worker registered again: Redis had lost it", extra={"worker": self.name})


def build(settings: Settings) -> tuple[ScoreWorker, Redis]:
    """Create the worker and install the jobs' context from ``settings``."""
    redis = make_redis(settings)
    engine = make_engine(settings)
    instrument_pool(engine)
    context.install(
        Applier(
            engine=engine,
            redis=redis,
            scripts=Scripts(redis),
            keys=Keys(settings.redis_prefix),
            action_types=settings.actions.by_name,
            result_ttl=settings.batching.result_ttl,
            board_ttl=settings.board_cache_ttl,
            transient_wait_s=min(15.0, settings.batching.job_timeout / 2),
            limits=settings.anomaly,
            boards=settings.boards,
        ),
        settings,
    )
    queues = [Queue(name, connection=redis) for name in (settings.batching.queue, settings.batching.maintenance_queue)]
    worker = ScoreWorker(queues, connection=redis, maintenance_interval=30, job_monitoring_interval=10)
    return worker, redis


def main() -> int:
    try:
        settings = Settings.from_env()
        startup.check(settings)
    except (SettingsError, startup.StartupError) as exc:
        print(f"worker: cannot start: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, "worker")
    metrics.serve(settings.metrics.port, settings.metrics.host, settings.metrics.token)
    worker, _ = build(settings)
    logging.getLogger(__name__).info("worker starting", extra={"queues": worker.queue_names()})
    worker.work(with_scheduler=True, logging_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
