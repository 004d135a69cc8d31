"""Redis access: the clients (of one server, or of the primary that Sentinel names), the
replicas' acknowledgement of a write, and the names of every key and channel the service owns.

Every process builds its clients here, so each follows a Sentinel failover and speaks TLS
(``rediss://``) the same way: web, stream, workers, scheduler, the rate limiter's storage
and the rq-dashboard.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.connection import BlockingConnectionPool, ConnectionPool, SSLConnection, UnixDomainSocketConnection, parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from scoreboard.settings import Settings

# A peer that vanished with its machine (no reset ever comes) is noticed on an idle
# connection (a subscription, a worker waiting for jobs) after about 8 s instead of the
# system's two hours.
_KEEPALIVE = {getattr(socket, name): value for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 1),
                                                                  ("TCP_KEEPCNT", 3)) if hasattr(socket, name)}
# Sentinels answer at once or not at all: a dead one must not hold up the question.
SENTINEL_TIMEOUT_S = 1.0


def connection_options(settings: Settings, **overrides) -> dict:
    """redis-py's connection arguments: ``REDIS_URL``'s (database, credentials, TLS and its
    ``ssl_*`` parameters), the service's timeouts, then ``overrides``."""
    options = dict(socket_connect_timeout=5, socket_keepalive=True, socket_keepalive_options=_KEEPALIVE,
                   health_check_interval=30)
    options.update(parse_url(settings.redis.url))
    if options.get("connection_class") is UnixDomainSocketConnection:
        options.pop("socket_keepalive")
        options.pop("socket_keepalive_options")
    options.update(overrides)
    return options


class SentinelBlockingConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """A bounded pool (callers wait for a free connection) whose connections go to the
    primary that Sentinel names: the stream's pool, behind a Sentinel."""

    def disconnect(self, inuse_connections: bool = True) -> None:
        """Close every connection, or (``inuse_connections=False``, when the primary moved)
        the idle ones; those in use are dropped when they come back (``owns_connection``)."""
        if inuse_connections:
            BlockingConnectionPool.disconnect(self)
            return
        self._checkpid()
        for connection in list(self.pool.queue):  # idle connections; None: not made yet
            if connection is not None:
                connection.disconnect()


def make_pool(settings: Settings, max_connections: int | None = None, blocking_timeout: float | None = None,
              **overrides) -> ConnectionPool:
    """A connection pool to Redis: to ``REDIS_URL``'s server, or to the primary that the
    Sentinels name (asked again whenever a connection is made, so a promoted replica is
    found after a failover).

    Args:
        settings: the process settings.
        max_connections: the most connections (None: no limit).
        blocking_timeout: when given, the pool is bounded: a caller waits up to this many
            seconds for a free connection instead of opening one more.
        **overrides: further connection arguments (``client_name``, timeouts).
    """
    options = connection_options(settings, **overrides)
    limits = {} if max_connections is None else {"max_connections": max_connections}
    if blocking_timeout is not None:
        limits["timeout"] = blocking_timeout
    conf = settings.redis
    if not conf.sentinels:
        pool_class = ConnectionPool if blocking_timeout is None else BlockingConnectionPool
        return pool_class(**limits, **options)
    tls = options.pop("connection_class", None) is SSLConnection
    sentinel_options = {
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
        "username": conf.sentinel_username or None,
        "password": conf.sentinel_password or None,
        "ssl": tls,
        **({k: v for k, v in options.items() if k.startswith("ssl_")} if tls else {}),
    }
    sentinel = Sentinel(list(conf.sentinels), sentinel_kwargs=sentinel_options)
    pool_class = SentinelConnectionPool if blocking_timeout is None else SentinelBlockingConnectionPool
    return pool_class(conf.sentinel_master, sentinel, ssl=tls, **limits, **options)


def make_redis(settings: Settings, **overrides) -> redis.Redis:
    """A Redis client (with a connection pool of its own, see ``make_pool``)."""
    return redis.Redis(connection_pool=make_pool(settings, **overrides))


@dataclass(frozen=True)
class ReplicaAcks:
    """How many Redis replicas must hold a write before the client is told (Redis ``WAIT``).

    Attributes:
        count: ``REDIS_MIN_REPLICA_ACKS`` (0: the primary alone).
        timeout_ms: the longest wait for them.
    """

    count: int = 0
    timeout_ms: int = 1000

    @classmethod
    def of(cls, settings: Settings) -> "ReplicaAcks":
        return cls(settings.redis.min_replica_acks, settings.redis.replica_ack_timeout_ms)

    def confirm(self, client: redis.Redis, keys: "Keys") -> bool:
        """Whether ``count`` replicas hold every write made so far (at once when ``count`` is 0).

        ``WAIT`` counts the writes of its own connection; a pooled request makes its writes
        on several, so one more write goes first on the connection that waits: everything
        written before it is then covered too (replication keeps the primary's order).
        """
        if not self.count:
            return True
        with client.pipeline(transaction=False) as pipe:
            pipe.incr(keys.replica_probe)
            pipe.wait(self.count, self.timeout_ms)
            return pipe.execute()[1] >= self.count


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
    def replica_probe(self) -> str:
        """Written just before each ``WAIT`` (``ReplicaAcks.confirm``)."""
        return f"{self.prefix}replicated"

    @property
    def ratelimit_prefix(self) -> str:
        return f"{self.prefix}rl"
