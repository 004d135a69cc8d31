"""Redis access: the client, and the names of every key and channel the service owns."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from scoreboard.settings import Settings


def make_redis(settings: Settings, **overrides) -> redis.Redis:
    """Create a Redis client (a connection pool) for ``settings.redis_url``."""
    options = dict(socket_connect_timeout=5, socket_keepalive=True, health_check_interval=30)
    options.update(overrides)
    return redis.Redis.from_url(settings.redis_url, **options)


@dataclass(frozen=True)
class Keys:
    """Key and channel names, all under one prefix (pub/sub ignores the database index)."""

    prefix: str

    def action_token(self, token: str) -> str:
        return f"{self.prefix}at:{token}"

    def submission(self, submission_id: str) -> str:
        return f"{self.prefix}sub:{submission_id}"

    def done(self, submission_id: str) -> str:
        return f"{self.prefix}done:{submission_id}"

    def batch(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}"

    @property
    def submission_prefix(self) -> str:
        """What ``submission(id)`` puts before the id (for the scripts that build the keys)."""
        return self.submission("")

    @property
    def done_prefix(self) -> str:
        return self.done("")

    @property
    def batch_prefix(self) -> str:
        return self.batch("")

    def revoked(self, jti: str) -> str:
        """Set when the access or refresh token ``jti`` is revoked (logout)."""
        return f"{self.prefix}revoked:{jti}"

    def revoked_session(self, session_id: str) -> str:
        """Set when every token of the login session ``session_id`` is revoked (logout)."""
        return self.revoked(f"sid:{session_id}")

    @property
    def batch_open(self) -> str:
        return f"{self.prefix}batch:open"

    @property
    def batch_seq(self) -> str:
        return f"{self.prefix}batch:seq"

    @property
    def batches(self) -> str:
        """Sorted set of batches not yet applied, scored by creation time."""
        return f"{self.prefix}batches"

    @property
    def pending_count(self) -> str:
        return f"{self.prefix}pending"

    @property
    def ranking(self) -> str:
        return f"{self.prefix}rank"

    @property
    def ranking_seq(self) -> str:
        return f"{self.prefix}rank:seq"

    @property
    def ranking_member(self) -> str:
        return f"{self.prefix}rank:member"

    @property
    def usernames(self) -> str:
        return f"{self.prefix}rank:name"

    @property
    def ranking_ready(self) -> str:
        return f"{self.prefix}rank:ready"

    @property
    def rebuild_lock(self) -> str:
        return f"{self.prefix}rank:rebuild"

    @property
    def board_version(self) -> str:
        return f"{self.prefix}board:version"

    @property
    def board_top(self) -> str:
        """Cached top 100 as JSON entries."""
        return f"{self.prefix}board:top"

    @property
    def board_top10(self) -> str:
        """The ready-made body of ``GET /api/scoreboard`` (limit 10)."""
        return f"{self.prefix}board:top10"

    @property
    def board_fill_lock(self) -> str:
        return f"{self.prefix}board:fill"

    @property
    def board_published(self) -> str:
        """The entries of the top 10 last published (publish.lua, republish.lua)."""
        return f"{self.prefix}board:top:last10"

    def job_lock(self, job: str) -> str:
        """Held while a run of the periodic job ``job`` is under way (``workers.maintenance``)."""
        return f"{self.prefix}cron:{job}"

    @property
    def maintenance_report(self) -> str:
        """Hash: job name -> JSON report of its last run (exported by the web's /metrics)."""
        return f"{self.prefix}ops:report"

    @property
    def scheduler_leader(self) -> str:
        """Held by the one scheduler that enqueues the periodic jobs."""
        return f"{self.prefix}ops:scheduler"

    @property
    def events_channel(self) -> str:
        return f"{self.prefix}events"

    @property
    def events_log(self) -> str:
        return f"{self.prefix}events:log"

    def streams(self, user_id: int) -> str:
        """Sorted set of a user's open live streams (member: stream id, score: last seen)."""
        return f"{self.prefix}streams:{user_id}"

    def anonymous_streams(self, address: str) -> str:
        """Sorted set of the open live streams without a token from one client address."""
        return f"{self.prefix}streams:addr:{address}"

    @property
    def banned(self) -> str:
        """Set of banned user ids (PostgreSQL's ``users.banned``, for the web's cheap check)."""
        return f"{self.prefix}banned"

    @property
    def ratelimit_prefix(self) -> str:
        return f"{self.prefix}rl"
