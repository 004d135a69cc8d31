"""Fixtures: real PostgreSQL and Redis, and the service's real processes."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import psycopg2
import pytest
import redis as redis_lib

from scoreboard.__main__ import migrate
from scoreboard.action_types import DEFAULT_ACTION_TYPES
from scoreboard.settings import Settings
from tests import processes, services

# An action type with no minimum duration, for tests that submit at once.
TAP = {"name": "tap", "min_delta": 1, "max_delta": 1000, "min_duration_ms": 0}
LOG_DIR = Path(os.environ.get("TEST_LOG_DIR", "/tmp/scoreboard-test-logs"))


@pytest.fixture(scope="session")
def database_url():
    url = services.create_database()
    os.environ["DATABASE_URL"] = url  # for the migrations, read like the release process does
    migrate()
    yield url
    services.drop_database(url)


@pytest.fixture(scope="session")
def redis_url():
    index = services.RedisIndex()
    yield index.url
    index.release()


@pytest.fixture(scope="session")
def base_env(database_url, redis_url):
    """The environment of every process the tests start."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        SCOREBOARD_ENV="test",
        REDIS_PREFIX=f"sbt{secrets.token_hex(3)}:",
        # queues of this session alone: a worker left over from an earlier session that
        # died on the same Redis database index can never take this session's jobs
        QUEUE_NAME=f"scores-{secrets.token_hex(3)}",
        MAINTENANCE_QUEUE_NAME=f"maintenance-{secrets.token_hex(3)}",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_KIB="1024",
        APPLY_JOB_TIMEOUT="5",
        ACTION_TYPES=json.dumps([a.as_dict() for a in DEFAULT_ACTION_TYPES] + [TAP]),
        # tests log in hundreds of users from one address and submit fast; the rate
        # limits themselves are tested on a web process of their own (`limited_api`)
        RATE_LIMIT_LOGIN="10000 per minute",
        RATE_LIMIT_REGISTER="10000 per minute",
        RATE_LIMIT_SUBMIT="1000 per second",
        RATE_LIMIT_ACTIONS="1000 per second",
        LOG_LEVEL="INFO",
        WEB_CONCURRENCY="2",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def settings(base_env) -> Settings:
    return Settings.from_env(base_env)


@pytest.fixture(scope="session")
def r(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def db(database_url):
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    yield conn
    conn.close()


class Stack:
    """The web (gunicorn, 2 gevent workers), 2 RQ workers and the scheduler."""

    def __init__(self, env: dict):
        self.env = env
        self.web, self.base = processes.start_web(env, LOG_DIR)
        self.workers = [processes.start_worker(env, LOG_DIR) for _ in range(2)]
        self.scheduler = processes.start_scheduler(env, LOG_DIR)

    def ensure_workers(self, count: int = 2) -> None:
        for dead in [w for w in self.workers if not w.alive()]:
            dead.stop()  # and whatever it forked
        self.workers = [w for w in self.workers if w.alive()]
        while len(self.workers) < count:
            self.workers.append(processes.start_worker(self.env, LOG_DIR))

    def stop(self) -> None:
        for proc in [self.web, self.scheduler, *self.workers]:
            proc.stop()


@pytest.fixture(scope="session")
def stack(base_env):
    s = Stack(base_env)
    yield s
    s.stop()


def reset_state(database_url: str, r, prefix: str) -> None:
    """Empty every table and the service's Redis keys (RQ's own keys stay)."""
    conn = psycopg2.connect(database_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("TRUNCATE users, score_history, action_tokens, score_flags, board_scores, board_periods"
                    " RESTART IDENTITY CASCADE")
        cur.execute("INSERT INTO board_periods (board, key, starts_at) VALUES ('all-time', 'all', 'epoch')")
    conn.close()
    keys = list(r.scan_iter(match=f"{prefix}*", count=1000)) + list(r.scan_iter(match="LIMITS:*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i:i + 500])


@pytest.fixture
def api(stack, database_url, r, settings):
    """The running service with empty state; yields its base URL."""
    stack.ensure_workers()
    reset_state(database_url, r, settings.redis_prefix)
    return stack.base


LIMITS = {"RATE_LIMIT_SUBMIT": "5 per minute", "RATE_LIMIT_ACTIONS": "30 per minute"}


@pytest.fixture(scope="session")
def limited_web(stack, base_env):
    """A second web process on the same services, with small rate limits."""
    proc, base = processes.start_web({**base_env, **LIMITS}, LOG_DIR, workers=1)
    yield base
    proc.stop()


@pytest.fixture
def limited_api(api, limited_web):
    """Base URL of the web process with small rate limits (state reset like ``api``)."""
    return limited_web


@pytest.fixture(scope="session")
def spare_redis_index():
    """A second Redis database index of this session, for process groups that must not
    share queues with ``stack`` (their own web, workers or schedulers). Flushed by each user."""
    index = services.RedisIndex()
    yield index
    index.release()
