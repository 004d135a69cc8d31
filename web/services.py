"""The app's connections and helpers, built once by ``create_app`` from the settings."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from argon2 import PasswordHasher
from flask import current_app
from rq import Queue
from sqlalchemy.engine import Engine

from scoreboard.db import ReadRouter
from scoreboard.navigation import Cursors
from scoreboard.redis_client import Keys, ReplicaAcks
from scoreboard.scripts import Scripts
from scoreboard.settings import Settings
from scoreboard.submissions import Submissions


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    scripts: Scripts
    keys: Keys
    queue: Queue
    hasher: PasswordHasher
    submissions: Submissions
    cursors: Cursors
    # Where read-only queries go: a healthy replica (DATABASE_REPLICA_URLS), else the primary.
    reads: ReadRouter
    # How many Redis replicas must hold what a client is told about (REDIS_MIN_REPLICA_ACKS).
    replica_acks: ReplicaAcks = ReplicaAcks()


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions["scoreboard"]
