"""Structured logs: one JSON object a line on stderr, built by structlog.

Every line is ``{"ts", "level", "logger", "message", "process", <the call's own fields>,
<the fields bound to the context>[, "exception"]}``. Each process calls ``configure(level,
process)`` once; gunicorn's own lines use ``formatter(process)`` through its
``logconfig_dict``. The standard library's loggers (this project's
``logging.getLogger(__name__).info(message, extra={...})``, and RQ's, gunicorn's,
SQLAlchemy's, Python's warnings) all end in one handler whose formatter is structlog's
``ProcessorFormatter``; ``security_event`` logs through structlog itself, so its fields
may have any name.

Context is bound with ``structlog.contextvars`` (``bind_contextvars``,
``clear_contextvars``): per request in the web (``request_id`` by ``web.request_ids``,
``user_id`` once ``web.identity`` has verified the access token), per job in a worker
(``rq_job_id`` and the opening request's ``request_id`` by ``workers.__main__``,
``batch_id`` by the apply job, ``submission_ids`` and ``request_ids`` once the batch is
sealed; each job runs in a context of its own, so nothing outlives it). A call's own
field wins over a bound one of the same name. ``submission_id`` is the API's job id (a
submission), ``rq_job_id`` RQ's (``apply-<batch>``): one id searched across the web's and
the workers' lines finds the submission's whole life.

Written here rather than taken from structlog: the order of the keys and the ``process``
field (one small processor), and hiding the values PostgreSQL quotes in its errors
(``Failing row contains (...)``, ``Key (...)=(...)``, ``LINE 1: <the statement>``: a row
may hold a password hash), which no library processor does; SQLAlchemy's own parameters
are hidden by the engines (``hide_parameters``, ``scoreboard.db``).
"""

from __future__ import annotations

import logging
import re
import sys

import orjson
import structlog
from structlog.contextvars import merge_contextvars
from structlog.stdlib import ExtraAdder, ProcessorFormatter

SECURITY_LOGGER = "scoreboard.security"

# The line's own keys, in this order; a field of the same name given to ``security_event``
# is kept with a trailing underscore.
_HEAD = ("ts", "level", "logger", "message", "process", "event")
_TAIL = "exception"
_RESERVED = frozenset(_HEAD) | {_TAIL}
_DROPPED = frozenset({"asctime"})  # set on a record by another handler's formatter

# PostgreSQL's errors quote values: a row or key in their details, an input that does not
# parse, and the statement's line, which psycopg2 sends with its parameters filled in. The
# parameters themselves never reach the logs (hide_parameters on every engine), nor should
# their echo: each of these is cut to the end of its line.
_QUOTED_VALUES = re.compile(
    r"(DETAIL:\s+(?:Failing row contains |Key )|LINE \d+: |invalid input (?:syntax|value) for [^:\n]*: ).*")


def _hide_quoted_values(_logger, _method, event_dict: dict) -> dict:
    for key, value in event_dict.items():
        if type(value) is str and ("DETAIL:" in value or "LINE " in value or "invalid input" in value):
            event_dict[key] = _QUOTED_VALUES.sub(r"\1(hidden)", value)
    return event_dict


def _shape(process_name: str):
    """The processor that puts the line's own keys first, ``exception`` last."""

    def shape(_logger, _method, event_dict: dict) -> dict:
        if process_name:
            event_dict["process"] = process_name
        line = {key: event_dict.pop(key) for key in _HEAD if key in event_dict}
        exception = event_dict.pop(_TAIL, None)
        line.update((k, v) for k, v in event_dict.items() if not k.startswith("_") and k not in _DROPPED)
        if exception is not None:
            line[_TAIL] = exception
        return line

    return shape


def _dumps(event_dict: dict, **kw) -> str:
    return orjson.dumps(event_dict, default=kw.get("default", repr)).decode()


def formatter(process_name: str = "") -> ProcessorFormatter:
    """The formatter of every log line of a process named ``process_name`` (web, stream,
    worker, scheduler): for gunicorn's ``logconfig_dict`` and for ``configure``."""
    return ProcessorFormatter(
        foreign_pre_chain=[ExtraAdder()],  # a standard library call's ``extra`` fields
        processors=[
            merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            ProcessorFormatter.remove_processors_meta,
            structlog.processors.EventRenamer("message", replace_by="_event"),
            structlog.processors.format_exc_info,
            _hide_quoted_values,
            _shape(process_name),
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
    )


def configure(level: str = "INFO", process_name: str = "") -> None:
    """Send every logger's records, and Python's warnings, to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(process_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings too become JSON lines (logger py.warnings)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger over the standard library's logger ``name``: keyword fields of any
    name, the same lines as every other logger."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[structlog.stdlib.filter_by_level, ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


_security = get_logger(SECURITY_LOGGER)


def security_event(name: str, /, *, level: int = logging.WARNING, **fields) -> None:
    """Log a security event (refused token, flag, ban, admin action) to ``scoreboard.security``.

    Args:
        name: what happened, snake_case (``request_refused``, ``submission_flagged``,
            ``user_banned``, ``flag_resolved``...); becomes the ``message`` and ``event`` fields.
        level: the logging level (default WARNING).
        **fields: the facts, e.g. ``user_id``, ``admin_id``, ``code``, ``request_id``; one
            named like a key of the line itself (``message``, ``level``...) gets a trailing ``_``.
    """
    safe = {(f"{k}_" if k in _RESERVED else k): v for k, v in fields.items()}
    _security.log(level, name, _event=name, **safe)
