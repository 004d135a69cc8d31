"""Figures read from Redis when Prometheus scrapes the API: queues, workers, memory,
the board's state and the periodic jobs' last runs (``web.metrics`` serves them)."""

from __future__ import annotations

import orjson
import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from scoreboard.boards import ALL_TIME_ID, ALL_TIME_KEY
from scoreboard.redis_client import Keys


class ScrapeCollector(Collector):
    """Figures read from Redis when Prometheus scrapes: queues, workers, memory, maintenance.

    Every web process reports the same values: aggregate them with ``max``, not ``sum``.
    """

    def __init__(self, r: redis.Redis, keys: Keys, queue_names: tuple[str, ...]):
        self.redis = r
        self.keys = keys
        self.queue_names = queue_names

    def collect(self):
        up = GaugeMetricFamily("scoreboard_redis_up", "1 when Redis answered this scrape.")
        try:
            families = self._queues() + self._redis() + self._board() + self._maintenance()
        except redis.RedisError:
            families = []
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
        yield up
        yield from families

    def _queues(self) -> list:
        names = {
            "depth": ("scoreboard_queue_depth", "Jobs waiting in the queue."),
            "started": ("scoreboard_queue_started_jobs", "Jobs being worked on."),
            "scheduled": ("scoreboard_queue_scheduled_jobs", "Jobs waiting for a retry or a set time."),
            "failed": ("scoreboard_queue_failed_jobs", "Jobs in the failed registry (inspect in rq-dashboard)."),
            "workers": ("scoreboard_queue_workers", "Workers listening on the queue."),
        }
        families = {k: GaugeMetricFamily(n, h, labels=["queue"]) for k, (n, h) in names.items()}
        for name in self.queue_names:
            queue = Queue(name, connection=self.redis)
            families["depth"].add_metric([name], queue.count)
            families["started"].add_metric([name], StartedJobRegistry(queue=queue).get_job_count(cleanup=False))
            families["scheduled"].add_metric([name], ScheduledJobRegistry(queue=queue).get_job_count(cleanup=False))
            families["failed"].add_metric([name], FailedJobRegistry(queue=queue).get_job_count(cleanup=False))
            families["workers"].add_metric([name], Worker.count(connection=self.redis, queue=queue))
        return list(families.values())

    def _redis(self) -> list:
        info = self.redis.info("memory")
        used = info.get("used_memory", 0)
        maxmemory = info.get("maxmemory", 0)
        limit = maxmemory or info.get("total_system_memory", 0)
        out = []
        for name, doc, value in (
            ("scoreboard_redis_memory_used_bytes", "Memory Redis uses (used_memory).", used),
            ("scoreboard_redis_memory_max_bytes", "Redis maxmemory (0: no limit set).", maxmemory),
            ("scoreboard_redis_memory_limit_bytes", "maxmemory, or the machine's memory when none is set.", limit),
        ):
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], value)
            out.append(family)
        return out

    def _board(self) -> list:
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.keys.pending_count)
        pipe.zcard(self.keys.batches)
        pipe.exists(self.keys.board_ready(ALL_TIME_ID, ALL_TIME_KEY))
        pipe.zcard(self.keys.board_ranking(ALL_TIME_ID, ALL_TIME_KEY))
        pending, batches, ready, ranked = pipe.execute()
        out = []
        for name, doc, value in (
            ("scoreboard_submissions_pending", "Accepted submissions not applied yet.", int(pending or 0)),
            ("scoreboard_batches_open", "Batches not applied yet.", batches),
            ("scoreboard_ranking_ready", "1 when the all-time board's Redis ranking is complete (0: rebuilding, "
                                         "the board is read from PostgreSQL).", ready),
            ("scoreboard_ranking_users", "Users in the all-time board's Redis ranking.", ranked),
        ):
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], value)
            out.append(family)
        return out

    def _maintenance(self) -> list:
        last_run = GaugeMetricFamily("scoreboard_maintenance_last_run_timestamp_seconds",
                                     "When each periodic job last finished.", labels=["job"])
        drift = GaugeMetricFamily("scoreboard_ranking_drift_users",
                                  "Users whose Redis ranking entry differed from PostgreSQL at the last reconcile.")
        for job, raw in sorted(self.redis.hgetall(self.keys.maintenance_report).items()):
            report = orjson.loads(raw)
            last_run.add_metric([job.decode()], report.get("at", 0))
            if job == b"reconcile_ranking" and "drift" in report:
                drift.add_metric([], report["drift"])
        return [last_run, drift]
