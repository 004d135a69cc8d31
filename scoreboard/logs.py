"""Structured logs: one JSON object a line, with the ``extra`` fields of each call.

Every line also carries the fields bound to the current context (``request_id`` in the
web, ``job_id`` and the request ids in a worker's job), so one request can be followed
from the API into the job that applied it. Security events go to their own logger,
``scoreboard.security``, through ``security_event``.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}

_bound: contextvars.ContextVar[dict] = contextvars.ContextVar("scoreboard_log_fields", default={})

SECURITY_LOGGER = "scoreboard.security"


class JsonFormatter(logging.Formatter):
    """Format a record as JSON: time, level, logger, message, then its extra fields."""

    def __init__(self, process_name: str = ""):
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.process_name:
            entry["process"] = self.process_name
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        for key, value in _bound.get().items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=repr).decode()


def configure(level: str = "INFO", process_name: str = "") -> None:
    """Send every logger's records, and Python's warnings, to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings too become JSON lines (logger py.warnings)


def bind(**fields) -> contextvars.Token:
    """Add ``fields`` to every log line of the current context (request or job).

    Returns:
        The token that ``unbind`` takes to restore the previous fields.
    """
    return _bound.set({**_bound.get(), **{k: v for k, v in fields.items() if v not in (None, "")}})


def unbind(token: contextvars.Token) -> None:
    """Restore the fields bound before ``bind`` returned ``token``."""
    try:
        _bound.reset(token)
    except ValueError:  # bound in another context: start clean instead
        _bound.set({})


def bound() -> dict:
    """The fields bound to the current context."""
    return dict(_bound.get())


@contextmanager
def context(**fields) -> Iterator[None]:
    """Bind ``fields`` for the duration of a ``with`` block."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def _safe(fields: dict) -> dict:
    """``extra`` may not reuse a LogRecord attribute name (``name``, ``args``...)."""
    return {(f"{k}_" if k in _STANDARD else k): v for k, v in fields.items()}


def security_event(name: str, /, *, level: int = logging.WARNING, **fields) -> None:
    """Log a security event (refused token, flag, ban, admin action) to ``scoreboard.security``.

    Args:
        name: what happened, snake_case (``request_refused``, ``submission_flagged``,
            ``user_banned``, ``flag_resolved``...); becomes the ``event`` field.
        level: the logging level (default WARNING).
        **fields: the facts, e.g. ``user_id``, ``admin_id``, ``code``, ``request_id``.
    """
    logging.getLogger(SECURITY_LOGGER).log(level, name, extra=_safe({"event": name, **fields}))
