"""gunicorn settings for the stream process: the web's (gevent, no preload, SIGTERM drains
the streams, access lines only with ACCESS_LOG), with its own port, more connections per
worker, and its own name on gunicorn's log lines ("process": "stream").

    STREAM_PORT (else PORT, else 8001), STREAM_CONCURRENCY (workers, default as the web's),
    STREAM_WORKER_CONNECTIONS (open streams per worker, default 10000).
"""

import os
import resource
import runpy

globals().update({k: v for k, v in runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                               "gunicorn_conf.py")).items()
                  if not k.startswith("__")})

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('STREAM_PORT') or os.environ.get('PORT') or '8001'}"
workers = int(os.environ.get("STREAM_CONCURRENCY", globals()["workers"]))  # default: the web's
worker_connections = int(os.environ.get("STREAM_WORKER_CONNECTIONS", "10000"))
PROCESS_NAME = "stream"
logconfig_dict = globals()["log_config"](PROCESS_NAME, globals()["loglevel"])  # its lines say "process": "stream"

# Each viewer is a socket: let the process open as many as the system allows.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard if _hard != resource.RLIM_INFINITY else 1 << 20, _hard))
except (ValueError, OSError):
    pass


def on_starting(server):
    """Refuse to start, with a clear message, when the settings are wrong or Redis does not
    answer; the stream process never needs PostgreSQL, so it does not wait for it (the
    check runs in a process of its own, see the web's ``on_starting``)."""
    _check_or_exit("--no-database")  # noqa: F821 (from gunicorn_conf.py)
