"""``GET /metrics`` and the request hooks that feed it, for the API and the stream alike.

Under gunicorn every worker writes its figures to ``PROMETHEUS_MULTIPROC_DIR`` (a fresh
directory per start, made by ``web/gunicorn_conf.py``) and whichever worker answers the
scrape adds them all up. Figures that belong to no one process (queues, Redis memory, the
last maintenance runs) are read from Redis at scrape time by the API's
``web.scrape.ScrapeCollector``; this module loads nothing beyond Flask and the client library.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from scoreboard import metrics
from scoreboard.logs import security_event
from scoreboard.settings import Settings
from web.errors import error_response

SUBMIT_ENDPOINT = "scores.submit"
CLIENT_GONE = "client_disconnected"  # web.bodies: no answer reached anyone
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
# Error codes that are security events: refused credentials, tokens and permissions.
SECURITY_CODES = {
    "invalid_credentials", "invalid_token", "token_revoked", "token_expired", "token_unknown", "token_used",
    "bad_signature", "invalid_score", "user_banned", "forbidden", "rate_limited",
}


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


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


def install(app: Flask, settings: Settings, collector: Collector | None = None) -> None:
    """Add the request hooks and ``GET /metrics`` to ``app`` (the API's, or the stream's).

    Args:
        settings: the process settings (``metrics_token``).
        collector: figures read at scrape time besides this process group's own (the API's
            ``web.scrape.ScrapeCollector``; None for the stream).
    """

    @app.before_request
    def _start_timer():
        g._metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        observe(response)
        return response

    def metrics_view():
        if not metrics.scrape_allowed(request.headers.get("Authorization"), settings.metrics.token):
            return error_response(401, "invalid_token", metrics.TOKEN_REFUSED_MESSAGE)
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
    code = g.get("error_code")
    if code == CLIENT_GONE:
        metrics.HTTP_CLIENT_DISCONNECTS.labels(method, route).inc()
        return
    count_request(method, route, status, elapsed)
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
