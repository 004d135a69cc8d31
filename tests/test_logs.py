"""JSON log lines: bound context fields, the security logger, warnings; and the pool gauges."""

import logging
import warnings

import orjson
from prometheus_client import REGISTRY

from scoreboard import db, logs, metrics
from scoreboard.db import make_engine


def capture(record_logger: str, emit) -> dict:
    formatter = logs.JsonFormatter("test")
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


def test_bound_fields_reach_every_line_of_the_context_only():
    with logs.context(request_id="r-1", job_id="j-1"):
        line = capture("scoreboard.test", lambda: logging.getLogger("scoreboard.test").info("hello", extra={"n": 2}))
        with logs.context(request_id="r-2"):
            inner = capture("scoreboard.test", lambda: logging.getLogger("scoreboard.test").info("inner"))
    after = capture("scoreboard.test", lambda: logging.getLogger("scoreboard.test").info("after"))
    assert line["request_id"] == "r-1" and line["job_id"] == "j-1" and line["n"] == 2 and line["process"] == "test"
    assert inner["request_id"] == "r-2" and inner["job_id"] == "j-1"
    assert "request_id" not in after and "job_id" not in after
    explicit = None
    with logs.context(request_id="bound"):
        explicit = capture("scoreboard.test", lambda: logging.getLogger("scoreboard.test").info(
            "x", extra={"request_id": "own"}))
    assert explicit["request_id"] == "own", "a line's own field wins over the bound one"


def test_security_events_have_their_own_logger_and_any_field_name():
    line = capture(logs.SECURITY_LOGGER, lambda: logs.security_event(
        "user_banned", admin_id=1, user_id=7, name="not a LogRecord clash", message="nor this"))
    assert line["logger"] == "scoreboard.security" and line["level"] == "warning"
    assert line["event"] == "user_banned" and line["message"] == "user_banned"
    assert line["admin_id"] == 1 and line["user_id"] == 7
    assert line["name_"] == "not a LogRecord clash" and line["message_"] == "nor this"


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
