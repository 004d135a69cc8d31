"""Graceful shutdown of the streams of a gunicorn worker.

gunicorn's worker answers SIGTERM by no longer accepting connections and waiting up to the
graceful timeout for open responses to end; a stream never ends by itself. So the
gunicorn config chains SIGTERM to ``drain_all``: every hub of the process tells its viewers
to reconnect (elsewhere) and ends their streams, and the worker exits well in time.
"""

from __future__ import annotations

import signal
import weakref

import gevent

_hubs: "weakref.WeakSet" = weakref.WeakSet()


def register(hub) -> None:
    """Drain ``hub`` when the process is told to stop."""
    _hubs.add(hub)


def drain_all(timeout: float = 5.0) -> None:
    """Drain every registered hub, each in its own greenlet (safe from a signal handler)."""
    for hub in list(_hubs):
        gevent.spawn(hub.drain, timeout)


def chain_sigterm(timeout: float = 5.0) -> None:
    """Run ``drain_all`` on SIGTERM, after the handler already installed (gunicorn's)."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        if callable(previous):
            previous(signum, frame)
        drain_all(timeout)

    signal.signal(signal.SIGTERM, on_sigterm)
