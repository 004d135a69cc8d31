"""gunicorn settings for the web and stream processes (gevent workers, no preload).

    ACCESS_LOG: any value writes an access line per request (JSON, credentials redacted,
    see web/access_log.py); unset by default.
"""

import logging
import multiprocessing
import os
import shutil
import tempfile

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count())))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "2000"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))
timeout = int(os.environ.get("WORKER_TIMEOUT", "30"))
# Slow clients: a gevent worker reads each request's line and headers under a Timeout of
# `keepalive` seconds (so it must stay above 0), and the app reads the body within
# REQUEST_BODY_TIMEOUT (web/bodies.py); `timeout` is only the workers' heartbeat here.
keepalive = 5
# What gunicorn refuses by itself, before the app (in JSON: web/gunicorn_errors.py): a
# request line over 4094 bytes (414), over 100 headers or one over 8190 bytes (431).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
preload_app = False  # the app must be imported after gevent has patched the worker
accesslog = os.environ.get("ACCESS_LOG") or None  # web.access_log.AccessLogger honours it
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
control_socket_disable = True  # several gunicorns may run on one machine

# gunicorn's own lines in the same JSON shape as the app's (scoreboard.logs imports no app code),
# Python warnings (gevent's at patch time) included. The stream's config names its process.
PROCESS_NAME = "web"


def log_config(process_name: str, level: str) -> dict:
    """The ``logconfig_dict`` of a gunicorn whose lines say ``"process": process_name``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "scoreboard.logs.formatter", "process_name": process_name}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["console"], "propagate": False},
            # its level follows `accesslog` (web.access_log.AccessLogger), not LOG_LEVEL
            "gunicorn.access": {"handlers": ["console"], "propagate": False},
        },
    }


logconfig_dict = log_config(PROCESS_NAME, loglevel)
logging.captureWarnings(True)
logger_class = "web.access_log.AccessLogger"


def on_starting(server):
    """Refuse to start, with a clear message, when settings or services are not right.

    The check runs as ``python -m scoreboard check``, a process of its own: imported here,
    redis-py would bring ``ssl`` into this master before the gevent workers it forks patch
    it (gevent's MonkeyPatchWarning, and TLS connections that may misbehave).
    """
    _check_or_exit()


def _check_or_exit(*options: str) -> None:
    import subprocess
    import sys

    code = subprocess.run([sys.executable, "-m", "scoreboard", "check", *options]).returncode
    if code:
        sys.exit(4)


def post_fork(server, worker):
    """In each worker: psycopg2 would block the whole gevent loop without psycogreen; the
    requests gunicorn refuses itself (414, 431, a malformed request) are answered in the
    contract's JSON error shape instead of HTML (web/gunicorn_errors.py)."""
    from psycogreen.gevent import patch_psycopg

    from web import gunicorn_errors

    patch_psycopg()
    gunicorn_errors.install()


def post_worker_init(worker):
    """On SIGTERM, open event streams are told to reconnect and end (see web/stream/lifecycle.py).

    The app is loaded by now: its long-lived objects (about 95,000: modules, schemas, the
    OpenAPI spec) are moved out of the garbage collector's sight, so the full collections
    that requests trigger no longer walk them (35 ms each before, every request of the
    worker waiting; well under 1 ms after).
    """
    import gc

    from web.stream.lifecycle import chain_sigterm

    chain_sigterm(timeout=max(1.0, min(5.0, worker.cfg.graceful_timeout / 2)))
    gc.collect()
    gc.freeze()


# Metrics: every worker writes to a directory of this gunicorn's own, made fresh at start
# (inside PROMETHEUS_MULTIPROC_DIR when the operator sets one, e.g. a tmpfs) and removed at
# exit. It is set before any worker imports prometheus_client, which reads it at import.
_metrics_dir = None


def pre_fork(server, worker):
    """Before the first worker: make the metrics directory (nothing in this master process
    imports prometheus_client, so the workers it forks see the variable at their import)."""
    if _metrics_dir is None:
        _make_metrics_dir()


def _make_metrics_dir():
    global _metrics_dir
    parent = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
    if parent:
        os.makedirs(parent, exist_ok=True)
    _metrics_dir = tempfile.mkdtemp(prefix="scoreboard-web-metrics-", dir=parent)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def child_exit(server, worker):
    """A dead worker's live gauges (open streams, pool in use) must not count any more."""
    if _metrics_dir is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server):
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
