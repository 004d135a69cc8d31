"""Every Prometheus metric the processes record, defined once.

The web runs several gunicorn workers: there ``PROMETHEUS_MULTIPROC_DIR`` is set (by
``web/gunicorn_conf.py``) before this module is imported, and the values live in files
that ``/metrics`` adds up. Workers and the scheduler are single processes with their
own port (``METRICS_PORT``). Figures read at scrape time (queues, Redis memory, the
last maintenance reports) are collected by ``web.metrics.ScrapeCollector``.

Names and labels here are what ``deploy/prometheus/alerts.yml`` and the Grafana
dashboard query; ``tests/test_deploy.py`` checks that they only use names defined here.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from typing import Iterable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)

# --- HTTP (web)
HTTP_REQUESTS = Counter(
    "scoreboard_http_requests", "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "scoreboard_http_request_duration_seconds",
    "Time to produce the response (for a stream: until it starts), by route template and status.",
    ["method", "route", "status"], buckets=LATENCY_BUCKETS,
)
HTTP_CLIENT_DISCONNECTS = Counter(
    "scoreboard_http_client_disconnects",
    "Requests whose client went away before its body was whole (no answer reached anyone; not in "
    "scoreboard_http_requests), by route template.", ["method", "route"],
)

# --- submissions: accepted or refused by the web, applied/rejected/flagged by a worker
SUBMISSIONS_ACCEPTED = Counter("scoreboard_submissions_accepted", "Submissions accepted by the web (202 or 200).")
SUBMISSIONS_REFUSED = Counter(
    "scoreboard_submissions_refused", "Submissions refused by the web, by error code.", ["code"]
)
SUBMISSIONS_APPLIED = Counter("scoreboard_submissions_applied", "Submissions applied (counted once).")
SUBMISSIONS_REJECTED = Counter(
    "scoreboard_submissions_rejected", "Submissions a worker refused (banned user, token used...), by code.", ["code"]
)
SUBMISSIONS_FLAGGED = Counter("scoreboard_submissions_flagged", "Applied submissions flagged for review.")
ANOMALY_RULE_HITS = Counter("scoreboard_anomaly_rule_hits", "Anomaly rules that fired, by rule.", ["rule"])

# --- Redis replicas (web, with REDIS_MIN_REPLICA_ACKS)
REPLICA_ACK_TIMEOUTS = Counter(
    "scoreboard_redis_replica_ack_timeouts",
    "Writes that too few Redis replicas confirmed in time (answered 503), by what was written.", ["write"],
)

# --- apply batches (worker)
APPLY_BATCH_SIZE = Histogram(
    "scoreboard_apply_batch_size", "Submissions in each applied batch.", buckets=BATCH_SIZE_BUCKETS
)
APPLY_BATCH_DURATION = Histogram(
    "scoreboard_apply_batch_duration_seconds", "Time to apply a batch: transaction and Redis publish.",
    buckets=LATENCY_BUCKETS,
)
APPLY_BATCHES = Counter(
    "scoreboard_apply_batches", "Apply attempts of a batch, by outcome (applied, error).", ["outcome"]
)

# --- jobs (worker) and the scheduler
JOBS = Counter("scoreboard_worker_jobs", "RQ jobs a worker finished, by function and outcome.", ["job", "outcome"])
JOB_DURATION = Histogram("scoreboard_worker_job_duration_seconds", "RQ job run time.", ["job"], buckets=JOB_BUCKETS)
RANKING_FIXES = Counter("scoreboard_ranking_fixes", "Ranking entries corrected by reconcile_ranking.")
SCHEDULER_ENQUEUED = Counter("scoreboard_scheduler_jobs_enqueued", "Periodic jobs enqueued, by job.", ["job"])
SCHEDULER_LEADER = Gauge(
    "scoreboard_scheduler_leader", "1 while this scheduler holds the leader lock and enqueues.",
    multiprocess_mode="liveall",
)

# --- the board read path (web)
BOARD_READS = Counter(
    "scoreboard_board_reads",
    "Board reads by where the answer came from: cache, ranking (cache refilled from the Redis ranking), "
    "database (PostgreSQL fallback, cache filled), cache_after_wait (another request filled it), "
    "database_uncached (waited too long; read PostgreSQL alone).",
    ["source"],
)

# --- live stream (web): call stream_opened/stream_closed and event_sent from the stream code
STREAMS_OPEN = Gauge("scoreboard_stream_connections", "Open event streams.", multiprocess_mode="livesum")
STREAM_EVENTS = Counter("scoreboard_stream_events_sent", "Events written to streams, by event.", ["event"])

# --- database pool, per process (web workers are told apart by the pid label)
DB_POOL_IN_USE = Gauge(
    "scoreboard_db_pool_connections_in_use", "Connections checked out of the pool.", ["pool"],
    multiprocess_mode="liveall",
)
DB_POOL_MAX = Gauge(
    "scoreboard_db_pool_connections_max", "Most connections the pool hands out (size + overflow).", ["pool"],
    multiprocess_mode="liveall",
)


TOKEN_REFUSED_MESSAGE = "Scraping needs the metrics bearer token."


def scrape_allowed(authorization: str | None, token: str) -> bool:
    """Whether a scrape with this ``Authorization`` header may read the metrics: always
    without a configured token, else only with ``Bearer <token>`` (constant-time compare)."""
    if not token:
        return True
    return hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode())


def serve(port: int, host: str = "127.0.0.1", token: str = "") -> bool:
    """Serve this process's metrics on ``port`` (a worker's or the scheduler's; 0: none),
    in a thread of its own, to scrapers holding ``token`` when one is set.

    A port already taken is logged, not fatal: the process still does its work.

    Returns:
        True when the metrics are served.
    """
    if not port:
        return False
    log = logging.getLogger(__name__)
    metrics_app = make_wsgi_app(REGISTRY)
    refused = json.dumps({"error": {"code": "invalid_token", "message": TOKEN_REFUSED_MESSAGE}}).encode()

    def app(environ, start_response):
        if not scrape_allowed(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "application/json"),
                                                ("Content-Length", str(len(refused)))])
            return [refused]
        return metrics_app(environ, start_response)

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
        server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    except OSError as exc:
        log.error("metrics port unavailable; this process's metrics are not served",
                  extra={"port": port, "error": str(exc)})
        return False
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics served", extra={"port": port, "host": host, "token_required": bool(token)})
    return True


class _QuietHandler(WSGIRequestHandler):
    """No access line per scrape on stderr."""

    def log_message(self, format, *args):
        pass


def stream_opened() -> None:
    STREAMS_OPEN.inc()


def stream_closed() -> None:
    STREAMS_OPEN.dec()


def event_sent(event_name: str, count: int = 1) -> None:
    STREAM_EVENTS.labels(event_name).inc(count)


def record_batch(outcomes: Iterable, seconds: float) -> None:
    """Count an applied batch: its size, time, and each submission's outcome.

    Args:
        outcomes: the ``scoreboard.apply.Outcome`` of each submission.
        seconds: time from the start of the transaction to the end of the publish.
    """
    size = 0
    for outcome in outcomes:
        size += 1
        if outcome.state == "applied":
            if getattr(outcome, "replayed", False):
                continue  # applied by an earlier attempt: counted then
            SUBMISSIONS_APPLIED.inc()
            if outcome.flagged:
                SUBMISSIONS_FLAGGED.inc()
                for rule in getattr(outcome, "rules", None) or ():
                    ANOMALY_RULE_HITS.labels(rule).inc()
        else:
            SUBMISSIONS_REJECTED.labels((outcome.error or {}).get("code", "unknown")).inc()
    APPLY_BATCHES.labels("applied").inc()
    APPLY_BATCH_SIZE.observe(size)
    APPLY_BATCH_DURATION.observe(seconds)
