"""The app's connections and helpers, built once by ``create_app`` from the settings."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from argon2 import PasswordHasher
from flask import current_app
from rq import Queue
from sqlalchemy.engine import Engine

from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from scoreboard.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    scripts: Scripts
    keys: Keys
    queue: Queue
    hasher: PasswordHasher
    # Where board reads go; None: the primary. A replica engine plugs in here.
    read_engine: Engine | None = None


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions["scoreboard"]
