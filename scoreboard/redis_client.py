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
    def batches_failed(self) -> str:
        """Sorted set of batches whose apply job failed for good (requeueable from the
        dashboard), scored like ``batches``: they no longer hold the closing watermark."""
        return f"{self.prefix}batches:failed"

    @property
    def seasons(self) -> str:
        """Hash: season board id -> JSON list of its seasons ``[key, starts_at, ends_at]`` (unix
        ms), for the processes that do not read PostgreSQL (the stream)."""
        return f"{self.prefix}b:seasons"

    @property
    def boards_held(self) -> str:
        """Set of the board periods whose ranking Redis holds ('board/period')."""
        return f"{self.prefix}b:held"

    @property
    def pending_count(self) -> str:
        return f"{self.prefix}pending"

    # ---- boards: the ranking of each board period held in Redis (see lua/ranking.lua) ----

    def board_base(self, board: str, period: str) -> str:
        """What the keys of one board period's ranking start with. The Lua scripts, given
        this base, derive the same names as the methods below."""
        return f"{self.prefix}b:{board}:{period}"

    def board_ranking(self, board: str, period: str) -> str:
        """Sorted set: the period's entries (member: reached-at and user id, 12 bytes)."""
        return self.board_base(board, period) + ":z"

    def board_guard(self, board: str, period: str, user_id: int) -> str:
        """Hash of 128 users' members and history ids (field: the user id modulo 128)."""
        return self.board_base(board, period) + f":g:{user_id // 128}"

    def board_ready(self, board: str, period: str) -> str:
        """Set once the period's ranking holds every entry of PostgreSQL."""
        return self.board_base(board, period) + ":ready"

    def board_top(self, board: str, period: str) -> str:
        """The period's cached top 100, as a board body."""
        return self.board_base(board, period) + ":top"

    def board_top10(self, board: str, period: str) -> str:
        """The ready-made body of the period's first page of 10 (``GET /api/scoreboard``'s)."""
        return self.board_base(board, period) + ":top10"

    def board_published(self, board: str, period: str) -> str:
        """The entries of the period's top 10 last published (to publish changes only)."""
        return self.board_base(board, period) + ":last10"

    def board_announced(self, board: str, period: str) -> str:
        """Set once the period's closing has been announced to the stream."""
        return self.board_base(board, period) + ":closed"

    def board_rebuild_lock(self, board: str, period: str) -> str:
        return self.board_base(board, period) + ":rebuild"

    def board_fill_lock(self, board: str, period: str) -> str:
        return self.board_base(board, period) + ":fill"

    def board_pages(self, board: str, period: str) -> str:
        """Hash: cached pages of a final period read from PostgreSQL (cursor|limit -> body)."""
        return self.board_base(board, period) + ":pages"

    @property
    def usernames(self) -> str:
        """Hash: user id -> username, once for every board."""
        return f"{self.prefix}rank:name"

    @property
    def board_version(self) -> str:
        """The version of every board: it grows with every applied update."""
        return f"{self.prefix}board:version"

    @property
    def legacy_ranking(self) -> tuple[str, ...]:
        """The single all-time ranking's keys before boards (removed by the purge)."""
        p = self.prefix
        return (f"{p}rank", f"{p}rank:seq", f"{p}rank:member", f"{p}rank:ready", f"{p}rank:rebuild",
                f"{p}board:top", f"{p}board:top10", f"{p}board:fill", f"{p}board:top:last10")

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
