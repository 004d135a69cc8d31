"""Real PostgreSQL and Redis for the tests: a database and a Redis database index of
their own per test session, so several runs on one machine don't meet."""

from __future__ import annotations

import os
import secrets
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import redis

BASE_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or os.environ.get(
    "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BASE_REDIS_URL = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def create_database() -> str:
    """Create an empty database; return its URL."""
    name = f"sb_test_{secrets.token_hex(4)}"
    conn = psycopg2.connect(BASE_DATABASE_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return _with_path(BASE_DATABASE_URL, "/" + name)


def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = psycopg2.connect(BASE_DATABASE_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


class RedisIndex:
    """Claims a free Redis database index (1-15) for this session, by a lock key in index 0."""

    def __init__(self):
        self.admin = redis.Redis.from_url(_with_path(BASE_REDIS_URL, "/0"))
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.index = None
        for _ in range(600):
            for index in range(1, 16):
                if self.admin.set(f"scoreboard-tests:db:{index}", self.owner, nx=True, ex=3600):
                    self.index = index
                    break
            if self.index is not None:
                break
            time.sleep(1)
        if self.index is None:
            raise RuntimeError("no free Redis database index for the tests")
        self.url = _with_path(BASE_REDIS_URL, f"/{self.index}")
        redis.Redis.from_url(self.url).flushdb()

    def release(self) -> None:
        redis.Redis.from_url(self.url).flushdb()
        key = f"scoreboard-tests:db:{self.index}"
        if self.admin.get(key) == self.owner.encode():
            self.admin.delete(key)
