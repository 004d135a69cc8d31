"""JSON log lines: bound context fields, the security logger, warnings, values of failed
statements kept out; and the pool gauges."""

import ast
import logging
import warnings

import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from structlog.contextvars import bound_contextvars

from scoreboard import db, logs
from scoreboard.db import make_engine
from tests.processes import ROOT


def capture(record_logger: str, emit) -> dict:
    """The one line ``emit`` logs to ``record_logger``, formatted as every process does."""
    formatter = logs.formatter("test")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(formatter.format(record))

    handler = Keep()
    logger = logging.getLogger(record_logger)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        emit()
    finally:
        logger.removeHandler(handler)
    assert len(records) == 1
    return orjson.loads(records[0])


def info(message: str, **extra):
    return lambda: logging.getLogger("scoreboard.test").info(message, extra=extra)


def test_bound_fields_reach_every_line_of_the_context_only():
    with bound_contextvars(request_id="r-1", rq_job_id="apply-b1"):
        line = capture("scoreboard.test", info("hello", n=2))
        with bound_contextvars(request_id="r-2"):
            inner = capture("scoreboard.test", info("inner"))
        explicit = capture("scoreboard.test", info("x", request_id="own"))
    after = capture("scoreboard.test", info("after"))
    assert list(line)[:5] == ["ts", "level", "logger", "message", "process"]
    assert line["request_id"] == "r-1" and line["rq_job_id"] == "apply-b1" and line["n"] == 2
    assert line["process"] == "test" and line["level"] == "info" and line["message"] == "hello"
    assert inner["request_id"] == "r-2" and inner["rq_job_id"] == "apply-b1"
    assert "request_id" not in after and "rq_job_id" not in after
    assert explicit["request_id"] == "own", "a line's own field wins over the bound one"


def test_an_exception_is_the_last_field():
    def fail():
        try:
            raise ValueError("broken")
        except ValueError:
            logging.getLogger("scoreboard.test").exception("it failed", extra={"step": 3})

    line = capture("scoreboard.test", fail)
    assert line["level"] == "error" and line["step"] == 3
    assert list(line)[-1] == "exception" and "ValueError: broken" in line["exception"]


def test_security_events_have_their_own_logger_and_any_field_name():
    with bound_contextvars(request_id="r-9"):
        line = capture(logs.SECURITY_LOGGER, lambda: logs.security_event(
            "user_banned", admin_id=1, user_id=7, name="not a clash any more", message="the line's own key"))
    assert line["logger"] == "scoreboard.security" and line["level"] == "warning"
    assert line["event"] == "user_banned" and line["message"] == "user_banned"
    assert line["admin_id"] == 1 and line["user_id"] == 7 and line["request_id"] == "r-9"
    assert line["name"] == "not a clash any more" and line["message_"] == "the line's own key"


def test_warnings_become_json_lines():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("INFO", "test")
        line = capture("py.warnings", lambda: warnings.warn("careful", UserWarning, stacklevel=1))
        assert "careful" in line["message"] and line["logger"] == "py.warnings"
    finally:
        logging.captureWarnings(False)
        root.handlers[:], level = saved
        root.setLevel(level)


SECRET = "$argon2id$v=19$m=1024,t=1,p=1$c2VjcmV0LXNhbHQ$bm90LWEtcmVhbC1oYXNo"


@pytest.mark.parametrize("statement,parameters", [
    # a CHECK violation: PostgreSQL's detail quotes the whole failing row
    ("INSERT INTO users (username, password_hash) VALUES (:u, :p)", {"u": "no spaces allowed", "p": SECRET}),
    # an input that does not parse: quoted, with the statement's line as psycopg2 sent it
    ("SELECT id FROM users WHERE id = :id AND password_hash = :p", {"id": SECRET, "p": SECRET}),
])
def test_a_failing_statement_never_logs_its_values(settings, statement, parameters):
    engine = make_engine(settings)

    def fail():
        try:
            with engine.begin() as conn:
                conn.execute(text(statement), parameters)
        except DBAPIError as exc:
            logging.getLogger("scoreboard.test").exception("statement failed", extra={"error": repr(exc)})

    try:
        line = capture("scoreboard.test", fail)
    finally:
        engine.dispose()
    assert "psycopg2.errors" in line["exception"]  # it did fail, and says how
    assert SECRET not in orjson.dumps(line).decode()
    assert "c2VjcmV0LXNhbHQ" not in orjson.dumps(line).decode()


def test_every_engine_hides_its_parameters():
    """Each ``create_engine`` of the service passes ``hide_parameters=True``."""
    calls = []
    for folder in ("scoreboard", "web", "workers", "scheduler", "migrations"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == \
                        "create_engine":
                    hidden = any(k.arg == "hide_parameters" and getattr(k.value, "value", None) is True
                                 for k in node.keywords)
                    calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", hidden))
    assert len(calls) >= 4
    assert [where for where, hidden in calls if not hidden] == []


def test_pool_gauges_follow_checkouts(settings):
    engine = make_engine(settings)
    db.instrument_pool(engine, pool="pooltest")

    def in_use():
        return REGISTRY.get_sample_value("scoreboard_db_pool_connections_in_use", {"pool": "pooltest"})

    assert REGISTRY.get_sample_value("scoreboard_db_pool_connections_max", {"pool": "pooltest"}) == \
        2 * settings.db_pool_size
    assert in_use() == 0
    with engine.connect():
        with engine.connect():
            assert in_use() == 2
        assert in_use() == 1
    assert in_use() == 0
    engine.dispose()
