"""``GET /metrics`` and the request hooks that feed it.

Under gunicorn every worker writes its figures to ``PROMETHEUS_MULTIPROC_DIR`` (a fresh
directory per start, made by ``web/gunicorn_conf.py``) and whichever worker answers the
scrape adds them all up. Figures that belong to no one process (queues, Redis memory, the
last maintenance runs) are read from Redis at scrape time by ``ScrapeCollector``.
"""

from __future__ import annotations

import hmac
import os
import time

import orjson
import redis
from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy.engine import Engine

from scoreboard import metrics
from scoreboard.logs import security_event
from scoreboard.redis_client import Keys
from scoreboard.settings import Settings
from web.errors import error_response

SUBMIT_ENDPOINT = "scores.submit"
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
# Error codes that are security events: refused credentials, tokens and permissions.
SECURITY_CODES = {
    "invalid_credentials", "invalid_token", "token_revoked", "token_expired", "token_unknown", "token_used",
    "bad_signature", "invalid_score", "user_banned", "forbidden", "rate_limited",
}


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


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
        pipe.exists(self.keys.ranking_ready)
        pipe.zcard(self.keys.ranking)
        pending, batches, ready, ranked = pipe.execute()
        out = []
        for name, doc, value in (
            ("scoreboard_submissions_pending", "Accepted submissions not applied yet.", int(pending or 0)),
            ("scoreboard_batches_open", "Batches not applied yet.", batches),
            ("scoreboard_ranking_ready", "1 when the Redis ranking is complete (0: rebuilding, "
                                         "the board is read from PostgreSQL).", ready),
            ("scoreboard_ranking_users", "Users in the Redis ranking.", ranked),
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


def exposition(collector: Collector | None) -> bytes:
    """The text of ``/metrics``: this process group's figures plus the scrape-time ones."""
    path = multiprocess_dir()
    registry = CollectorRegistry()
    if collector is not None:
        registry.register(collector)
    if path:
        MultiProcessCollector(registry, path=path)
        return generate_latest(registry)
    return generate_latest(REGISTRY) + generate_latest(registry)


def install(app: Flask, r: redis.Redis, keys: Keys, settings: Settings, engine: Engine | None = None,
            scrape: bool = True) -> None:
    """Add the request hooks and ``GET /metrics`` to ``app`` (the API's, or the stream's).

    Args:
        r, keys: where the scrape-time figures are read.
        settings: the process settings (queue names, ``metrics_token``).
        engine: the database engine whose pool is measured (None: the app has none).
        scrape: whether this app's ``/metrics`` also reports the scrape-time figures.
    """
    collector = ScrapeCollector(r, keys, (settings.queue_name, settings.maintenance_queue_name)) if scrape else None
    if engine is not None:
        metrics.instrument_pool(engine)

    @app.before_request
    def _start_timer():
        g._metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        observe(response)
        return response

    def metrics_view():
        token = settings.metrics_token
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return error_response(401, "invalid_token", "Scraping needs the metrics bearer token.")
        return Response(exposition(collector), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])


def observe(response: Response) -> None:
    """Count one answered request; count a submission accepted or refused; log refusals."""
    started = g.get("_metrics_started")
    elapsed = time.perf_counter() - started if started is not None else 0.0
    rule = request.url_rule
    route = rule.rule if rule is not None else "unmatched"
    method = request.method if request.method in METHODS else "other"
    status = response.status_code
    count_request(method, route, status, elapsed)
    code = g.get("error_code")
    if request.endpoint == SUBMIT_ENDPOINT:
        if status in (200, 202):
            metrics.SUBMISSIONS_ACCEPTED.inc()
        elif status >= 400:
            metrics.SUBMISSIONS_REFUSED.labels(code or f"http_{status}").inc()
    if code in SECURITY_CODES:
        jwt_payload = g.get("_jwt_extended_jwt") or {}
        security_event("request_refused", code=code, status=status, method=method, route=route,
                       user_id=jwt_payload.get("sub"), remote_addr=request.remote_addr)


_request_series: dict[tuple[str, str, int], tuple] = {}


def count_request(method: str, route: str, status: int, elapsed: float) -> None:
    """Count one answered request in the request counter and the latency histogram.

    The labelled series are looked up once per (method, route, status) and kept: the
    client library's own lookup was a measurable share of a cheap request.
    """
    series = _request_series.get((method, route, status))
    if series is None:
        series = _request_series[method, route, status] = (
            metrics.HTTP_REQUESTS.labels(method, route, str(status)),
            metrics.HTTP_DURATION.labels(method, route, str(status)))
    series[0].inc()
    series[1].observe(elapsed)
