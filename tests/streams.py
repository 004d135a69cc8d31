"""Fixtures and helpers for the live stream tests (import the fixtures into a test module)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest

from scoreboard.redis_client import Keys
from tests import ranks
from tests import processes
from tests.conftest import LOG_DIR
from tests.publisher import Publisher, board_entries  # noqa: F401 (re-exported)

# The stream process must never need PostgreSQL: its tests run it with a database
# address where nothing listens.
NO_DATABASE = "postgresql://stream-must-not-use@127.0.0.1:9/none"


def stream_environment(base_env: dict, **overrides) -> dict:
    env = dict(base_env, DATABASE_URL=NO_DATABASE, STREAM_HEARTBEAT="1", STREAM_MAX_PER_USER="3",
               STREAM_SEND_TIMEOUT="3", STREAM_REPLAY_WINDOW="300", STREAM_BOARD_INTERVAL_MS="100",
               GRACEFUL_TIMEOUT="10")
    env.update({k: str(v) for k, v in overrides.items()})
    return env


@pytest.fixture(scope="session")
def stream_env(base_env):
    return stream_environment(base_env)


@pytest.fixture(scope="session")
def stream_server(stream_env):
    """One stream process (gunicorn, one gevent worker) for the session: ``.base``, ``.proc``."""
    proc, base = processes.start_stream(stream_env, LOG_DIR)
    yield SimpleNamespace(proc=proc, base=base)
    proc.stop()


@pytest.fixture
def live(api, r, settings):
    """Empty state, with the (empty) ranking marked ready as a rebuild would, and the board
    version going on from where it was (in production it never goes back; the stream
    processes of the session remember the versions they saw)."""
    keys = Keys(settings.redis_prefix)
    ranks.mark_ready(r, keys)
    r.set(keys.board_version, time.time_ns() // 1000)
    return api


def mint_token(settings, user_id: int, expires_in: float = 3600, sid: str | None = None, kind: str = "access") -> str:
    """An access token as the API signs it (flask-jwt-extended's claims)."""
    now = int(time.time())
    claims = {"sub": str(user_id), "jti": str(uuid.uuid4()), "type": kind, "fresh": False, "iat": now, "nbf": now,
              "exp": int(now + expires_in), "sid": sid or uuid.uuid4().hex, "name": f"user{user_id}"}
    return jwt.encode(claims, settings.jwt_secret_key, algorithm="HS256")


def worker_pids(master_pid: int) -> list[int]:
    """The gunicorn workers of a master."""
    path = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
