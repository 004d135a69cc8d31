"""gunicorn settings for the web and stream processes (gevent workers, no preload)."""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count())))
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "2000"))
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))
timeout = int(os.environ.get("WORKER_TIMEOUT", "30"))
keepalive = 5
preload_app = False  # the app must be imported after gevent has patched the worker
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
control_socket_disable = True  # several gunicorns may run on one machine


def on_starting(server):
    """Refuse to start, with a clear message, when settings or services are not right."""
    import sys

    from scoreboard.settings import Settings, SettingsError
    from scoreboard.startup import StartupError, check

    try:
        check(Settings.from_env(), wait=float(os.environ.get("STARTUP_WAIT", "30")),
              database=os.environ.get("STARTUP_CHECK_DATABASE", "true") != "false")
    except (SettingsError, StartupError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr, flush=True)
        sys.exit(4)


def post_fork(server, worker):
    """psycopg2 would block the whole gevent loop without this, in each worker."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


def post_worker_init(worker):
    """On SIGTERM, open event streams are told to reconnect and end (see web/stream/lifecycle.py)."""
    from web.stream.lifecycle import chain_sigterm

    chain_sigterm(timeout=max(1.0, min(5.0, worker.cfg.graceful_timeout / 2)))
