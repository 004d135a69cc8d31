"""Settings, read once from the environment by each entry point into a frozen object.

Every environment variable the service reads is read here, in ``Settings.from_env``
(gunicorn's config files read their own: ports, worker counts, timeouts). The fields come
in small groups (Redis, rate limits, sessions, action tokens, queues and batching, the
stream, the anomaly rules, replicas, metrics, HTTP), each a frozen object with its defaults;
``tests/test_settings.py`` holds that nothing else reads ``os.environ``.

There are no default secrets: ``SECRET_KEY`` must be given. ``make run`` creates a
development key under ``.local/`` for you; production refuses to start without one.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scoreboard.action_types import ActionType, DEFAULT_ACTION_TYPES, parse_action_types
from scoreboard.anomaly import Thresholds
from scoreboard.boards import DEFAULT_BOARDS, Board, parse_boards


class SettingsError(Exception):
    """Raised when the environment does not describe a runnable service."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {value!r}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if not (0 < value < math.inf):
        raise SettingsError(f"{name} must be a positive number of seconds, got {env.get(name)!r}")
    return value


_PER = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_LIMIT = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d*)\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)


def near_limit_count(limits: str, window: int, fraction: float) -> int:
    """How many submissions in ``window`` seconds come near the rate limit ``limits``.

    Takes the limit item with exactly that window if there is one (``600 per minute``
    for 60 s), else scales the first item to the window; then ``fraction`` of it.
    """
    items = []
    for part in re.split(r"[;,]", limits):
        match = _LIMIT.match(part)
        if match:
            amount, multiple, unit = match.groups()
            items.append((int(amount), int(multiple or 1) * _PER[unit.lower()]))
    if not items:
        return 0
    exact = [amount for amount, seconds in items if seconds == window]
    allowed = exact[0] if exact else items[0][0] * window / items[0][1]
    return max(1, math.ceil(allowed * fraction))


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The PostgreSQL URL alone (what the migrations need), in SQLAlchemy's spelling.

    A libpq multi-host URL (``postgresql://u:p@db1:5432,db2:5432/app?target_session_attrs=read-write``)
    becomes SQLAlchemy's ``?host=db1:5432&host=db2:5432`` form; libpq then tries the hosts in
    turn and keeps the one that accepts writes, so a promoted replica is found by itself.
    """
    env = os.environ if environ is None else environ
    url = env.get("DATABASE_URL")
    if not url:
        raise SettingsError("missing DATABASE_URL in the environment")
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    return _hosts_in_query(url)


def _hosts_in_query(url: str) -> str:
    """``scheme://auth@h1:p1,h2:p2/db?q`` as ``scheme://auth@/db?host=h1:p1&host=h2:p2&q``."""
    parts = urlsplit(url)
    auth, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return url
    query = [("host", host) for host in hosts.split(",") if host] + parse_qsl(parts.query, keep_blank_values=True)
    return urlunsplit((parts.scheme, auth + at, parts.path, urlencode(query, safe=":[]/"), parts.fragment))


def _sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (``[v6 address]:port`` too) as pairs."""
    pairs = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"REDIS_SENTINELS must be host:port,host:port,..., got {part!r}")
        pairs.append((host, int(port)))
    return tuple(pairs)


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is, and when a write the client is told about counts as kept.

    Attributes:
        url: ``REDIS_URL``: the server (``rediss://`` for TLS, with redis-py's ``ssl_*``
            query parameters such as ``ssl_ca_certs``). With Sentinels it lends only its
            database number, username and password, and TLS (``rediss://``: the primary,
            its replicas and the Sentinels are all reached over TLS).
        sentinels: ``REDIS_SENTINELS``, the Sentinels that name the current primary.
        sentinel_master: ``REDIS_SENTINEL_MASTER``, the name they know it by.
        sentinel_password: ``REDIS_SENTINEL_PASSWORD``, the Sentinels' own password
            (``REDIS_SENTINEL_USERNAME`` with ACLs), when they have one.
        min_replica_acks: ``REDIS_MIN_REPLICA_ACKS``: how many replicas must hold an accepted
            submission (and an issued action token) before the client is told (Redis
            ``WAIT``); 0 answers once the primary holds it.
        replica_ack_timeout_ms: ``REDIS_REPLICA_ACK_TIMEOUT_MS``: how long to wait for them;
            then the answer is 503 ``unavailable`` (with the ``job_id`` of a submission).
    """

    url: str = "redis://"
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = ""
    sentinel_username: str = ""
    sentinel_password: str = ""
    min_replica_acks: int = 0
    replica_ack_timeout_ms: int = 1000

    @property
    def where(self) -> str:
        """Where Redis is, for messages (no password)."""
        if self.sentinels:
            listed = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"the primary {self.sentinel_master!r} of the Sentinels {listed}"
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or ''}{parts.path}"


@dataclass(frozen=True)
class RateLimits:
    """Flask-Limiter limit strings (``RATE_LIMIT_*``), per user once authenticated, else per address.

    Attributes:
        enabled: ``RATELIMIT_ENABLED``; false turns every limit off (load tests).
    """

    enabled: bool = True
    submit: str = "20 per second;600 per minute"
    actions: str = "20 per second;600 per minute"
    login: str = "10 per minute"
    register: str = "20 per hour"


@dataclass(frozen=True)
class Sessions:
    """JWT lifetimes (seconds) and the password hasher's cost (Argon2id, OWASP's minimum)."""

    access_expires: int = 3600
    refresh_expires: int = 30 * 24 * 3600
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    argon2_parallelism: int = 1


@dataclass(frozen=True)
class Actions:
    """The action types and their one-time tokens.

    Attributes:
        types: the configured action types (``ACTION_TYPES`` or ``ACTION_TYPES_FILE``).
        token_ttl: seconds an action token lives.
        clock_skew: seconds a client's clock may be off.
    """

    types: tuple[ActionType, ...] = field(default_factory=lambda: DEFAULT_ACTION_TYPES)
    token_ttl: int = 300
    clock_skew: int = 30

    @property
    def by_name(self) -> dict[str, ActionType]:
        return {a.name: a for a in self.types}


@dataclass(frozen=True)
class Batching:
    """Accepted submissions on their way to the workers.

    Attributes:
        queue: the RQ queue of the apply jobs; ``maintenance_queue`` the periodic jobs'.
        max_size: most submissions in one batch (one transaction).
        pending_cap: most accepted submissions waiting; beyond it submit answers 503.
        job_timeout: seconds an apply job may run.
        result_ttl: seconds a submission's result is kept for its client.
        prefer_wait_max: the longest ``Prefer: wait=N`` honoured (at most 10 s).
    """

    queue: str = "scores"
    maintenance_queue: str = "maintenance"
    max_size: int = 500
    pending_cap: int = 100_000
    job_timeout: int = 30
    result_ttl: int = 24 * 3600
    prefer_wait_max: float = 10.0


@dataclass(frozen=True)
class Stream:
    """The live stream (``GET /api/scoreboard/stream``, see ``web/stream/``).

    Attributes:
        url: where the page opens the stream ("" : the API's own origin).
        queue_max: events one viewer may have waiting; >= ``Batching.max_size``, so one
            batch of one user never overflows it.
        redis_connections: per stream process: one holds the subscription, the others
            run the commands.
        max_anonymous_per_address: streams without a token (the board alone) per client
            address (a venue's NAT shares one); 0 turns anonymous viewers away.
    """

    url: str = ""
    retry_ms: int = 3000
    heartbeat: float = 15.0
    board_interval_ms: int = 100
    queue_max: int = 512
    send_timeout: float = 30.0
    max_per_user: int = 5
    max_anonymous_per_address: int = 50
    replay_window: int = 10_000
    redis_connections: int = 2
    send_buffer: int = 32 * 1024


@dataclass(frozen=True)
class Replicas:
    """Read replicas for read-only queries, and how much replay lag each may have."""

    urls: tuple[str, ...] = ()
    max_lag_s: float = 5.0


@dataclass(frozen=True)
class Metrics:
    """Prometheus metrics.

    Attributes:
        port: a worker's or the scheduler's own ``/metrics`` port (0: none); the web and
            the stream serve ``/metrics`` themselves.
        host: the address a worker's or the scheduler's metrics listen on (loopback by
            default; production refuses any other without a ``token``).
        token: when set, every ``/metrics`` (the web's, the stream's, a worker's and the
            scheduler's) answers only ``Authorization: Bearer <token>``.
    """

    port: int = 0
    host: str = "127.0.0.1"
    token: str = ""


@dataclass(frozen=True)
class Http:
    """What the API's HTTP layer enforces besides the contract's checks.

    Attributes:
        max_content_length: the largest request body, in bytes.
        body_timeout: seconds a request body may take to arrive, whole (408 after that).
        trusted_proxies: proxies in front of the app to trust for X-Forwarded-For/-Proto (nginx: 1).
        cors_origins: browser origins allowed to call the API cross-origin (exact origins, or "*").
        hsts_max_age: Strict-Transport-Security max-age in seconds (0: no header).
        admin_cookie_secure: the rq-dashboard session cookie is sent over HTTPS only.
    """

    max_content_length: int = 16 * 1024
    body_timeout: float = 10.0
    trusted_proxies: int = 0
    cors_origins: tuple[str, ...] = ()
    hsts_max_age: int = 0
    admin_cookie_secure: bool = True


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know, fixed at start.

    Attributes:
        env: ``development``, ``test`` or ``production``.
        database_url: SQLAlchemy URL of the PostgreSQL primary (several hosts: the one that
            accepts writes, see ``database_url_from_env``).
        redis: the Redis holding queues, tokens, the ranking and events.
        secret_key: Flask secret; also signs JWTs unless ``jwt_secret_key`` is set.
        redis_prefix: Prefix of every key and pub/sub channel the service owns.
        board_cache_ttl: seconds the cached board lives without an update.
        startup_wait: seconds a process waits at start for PostgreSQL and Redis to answer.
        startup_check_database: whether the web's start-up check waits for PostgreSQL too.
        boards: the boards (``BOARDS`` or ``BOARDS_FILE``); ``all-time`` comes first unless placed.
    """

    database_url: str
    redis: RedisSettings
    secret_key: str
    jwt_secret_key: str
    env: str = "development"
    port: int = 8000
    redis_prefix: str = "sb:"
    board_cache_ttl: int = 5
    db_pool_size: int = 10
    log_level: str = "INFO"
    startup_wait: float = 30.0
    startup_check_database: bool = True
    boards: tuple[Board, ...] = DEFAULT_BOARDS
    limits: RateLimits = field(default_factory=RateLimits)
    sessions: Sessions = field(default_factory=Sessions)
    actions: Actions = field(default_factory=Actions)
    batching: Batching = field(default_factory=Batching)
    stream: Stream = field(default_factory=Stream)
    anomaly: Thresholds = field(default_factory=Thresholds)
    replicas: Replicas = field(default_factory=Replicas)
    metrics: Metrics = field(default_factory=Metrics)
    http: Http = field(default_factory=Http)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read the settings from ``environ`` (default: ``os.environ``).

        Raises:
            SettingsError: a value is missing or malformed; the message says which.
        """
        env = os.environ if environ is None else environ
        mode = env.get("SCOREBOARD_ENV", "production").strip().lower()
        if mode not in {"development", "test", "production"}:
            raise SettingsError(f"SCOREBOARD_ENV must be development, test or production, got {mode!r}")
        missing = [name for name in ("DATABASE_URL", "SECRET_KEY") if not env.get(name)]
        if not env.get("REDIS_URL") and not env.get("REDIS_SENTINELS"):
            missing.insert(1, "REDIS_URL (or REDIS_SENTINELS)")
        if missing:
            raise SettingsError(
                "missing " + ", ".join(missing) + " in the environment"
                + (" (`make run` provides them for development)" if mode != "production" else "")
            )
        secret = env["SECRET_KEY"]
        jwt_secret = env.get("JWT_SECRET_KEY") or secret
        if mode == "production":
            for name, value in (("SECRET_KEY", secret), ("JWT_SECRET_KEY", jwt_secret)):
                if len(value) < 32 or value.lower() in {"dev", "secret", "changeme", "change-me"}:
                    raise SettingsError(f"{name} is too weak for production: use at least 32 random characters")
        return cls(
            database_url=database_url_from_env(env),
            redis=_redis(env),
            secret_key=secret,
            jwt_secret_key=jwt_secret,
            env=mode,
            port=_int(env, "PORT", 8000, 1),
            redis_prefix=env.get("REDIS_PREFIX", "sb:"),
            board_cache_ttl=_int(env, "BOARD_CACHE_TTL", cls.board_cache_ttl, 1),
            db_pool_size=_int(env, "DB_POOL_SIZE", cls.db_pool_size, 1),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            startup_wait=_float(env, "STARTUP_WAIT", cls.startup_wait),
            startup_check_database=_bool(env, "STARTUP_CHECK_DATABASE", True),
            boards=_boards(env),
            limits=_limits(env),
            sessions=_sessions(env),
            actions=_actions(env),
            batching=_batching(env),
            stream=_stream(env),
            anomaly=_anomaly(env),
            replicas=Replicas(
                urls=tuple(u.strip().replace("postgres://", "postgresql://", 1)
                           for u in env.get("DATABASE_REPLICA_URLS", "").split(",") if u.strip()),
                max_lag_s=_float(env, "REPLICA_MAX_LAG", Replicas.max_lag_s),
            ),
            metrics=_metrics(env, mode),
            http=Http(
                max_content_length=_int(env, "MAX_CONTENT_LENGTH", Http.max_content_length, 256),
                body_timeout=_positive(env, "REQUEST_BODY_TIMEOUT", Http.body_timeout),
                trusted_proxies=_int(env, "TRUSTED_PROXIES", Http.trusted_proxies, 0),
                cors_origins=tuple(o.strip().rstrip("/") for o in env.get("CORS_ORIGINS", "").split(",") if o.strip()),
                hsts_max_age=_int(env, "HSTS_MAX_AGE", 31536000 if mode == "production" else 0, 0),
                admin_cookie_secure=_bool(env, "ADMIN_COOKIE_SECURE", mode == "production"),
            ),
        )


def _redis(env: Mapping[str, str]) -> RedisSettings:
    sentinels = _sentinels(env.get("REDIS_SENTINELS", ""))
    master = env.get("REDIS_SENTINEL_MASTER", "").strip()
    if sentinels and not master:
        raise SettingsError("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER, the name the Sentinels know the primary by")
    url = env.get("REDIS_URL") or RedisSettings.url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {url.split(':')[0]!r}")
    return RedisSettings(
        url=url,
        sentinels=sentinels,
        sentinel_master=master if sentinels else "",
        sentinel_username=env.get("REDIS_SENTINEL_USERNAME", ""),
        sentinel_password=env.get("REDIS_SENTINEL_PASSWORD", ""),
        min_replica_acks=_int(env, "REDIS_MIN_REPLICA_ACKS", RedisSettings.min_replica_acks, 0),
        replica_ack_timeout_ms=_int(env, "REDIS_REPLICA_ACK_TIMEOUT_MS", RedisSettings.replica_ack_timeout_ms, 1),
    )


def _metrics(env: Mapping[str, str], mode: str) -> Metrics:
    """The metrics settings; production refuses a worker's or the scheduler's metrics on
    an address other hosts reach without ``METRICS_TOKEN``."""
    metrics = Metrics(
        port=_int(env, "METRICS_PORT", Metrics.port, 0),
        host=env.get("METRICS_HOST") or Metrics.host,
        token=env.get("METRICS_TOKEN", ""),
    )
    if mode == "production" and metrics.port and not metrics.token and not _loopback(metrics.host):
        raise SettingsError(f"METRICS_HOST={metrics.host} serves the metrics to other hosts: set METRICS_TOKEN "
                            "too (or keep the default 127.0.0.1)")
    return metrics


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _limits(env: Mapping[str, str]) -> RateLimits:
    return RateLimits(
        enabled=_bool(env, "RATELIMIT_ENABLED", True),
        submit=env.get("RATE_LIMIT_SUBMIT", RateLimits.submit),
        actions=env.get("RATE_LIMIT_ACTIONS", RateLimits.actions),
        login=env.get("RATE_LIMIT_LOGIN", RateLimits.login),
        register=env.get("RATE_LIMIT_REGISTER", RateLimits.register),
    )


def _sessions(env: Mapping[str, str]) -> Sessions:
    return Sessions(
        access_expires=_int(env, "ACCESS_TOKEN_EXPIRES", Sessions.access_expires, 1),
        refresh_expires=_int(env, "REFRESH_TOKEN_EXPIRES", Sessions.refresh_expires, 1),
        argon2_time_cost=_int(env, "ARGON2_TIME_COST", Sessions.argon2_time_cost, 1),
        argon2_memory_kib=_int(env, "ARGON2_MEMORY_KIB", Sessions.argon2_memory_kib, 8),
        argon2_parallelism=_int(env, "ARGON2_PARALLELISM", Sessions.argon2_parallelism, 1),
    )


def _text_or_file(env: Mapping[str, str], name: str) -> str | None:
    """The value of ``name``, or the text of the file that ``{name}_FILE`` names (which wins)."""
    path = env.get(f"{name}_FILE")
    if not path:
        return env.get(name)
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise SettingsError(f"{name}_FILE cannot be read: {exc}") from None


def _boards(env: Mapping[str, str]) -> tuple[Board, ...]:
    try:
        return parse_boards(_text_or_file(env, "BOARDS"))
    except ValueError as exc:
        raise SettingsError(f"BOARDS is not valid: {exc}") from None


def _actions(env: Mapping[str, str]) -> Actions:
    types_raw = _text_or_file(env, "ACTION_TYPES")
    try:
        types = parse_action_types(json.loads(types_raw)) if types_raw else DEFAULT_ACTION_TYPES
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"ACTION_TYPES is not valid: {exc}") from None
    return Actions(
        types=types,
        token_ttl=_int(env, "ACTION_TOKEN_TTL", Actions.token_ttl, 1),
        clock_skew=_int(env, "CLOCK_SKEW", Actions.clock_skew, 0),
    )


def _batching(env: Mapping[str, str]) -> Batching:
    return Batching(
        queue=env.get("QUEUE_NAME", Batching.queue),
        maintenance_queue=env.get("MAINTENANCE_QUEUE_NAME", Batching.maintenance_queue),
        max_size=_int(env, "BATCH_MAX", Batching.max_size, 1),
        pending_cap=_int(env, "PENDING_CAP", Batching.pending_cap, 0),
        job_timeout=_int(env, "APPLY_JOB_TIMEOUT", Batching.job_timeout, 1),
        result_ttl=_int(env, "RESULT_TTL", Batching.result_ttl, 1),
        prefer_wait_max=min(_float(env, "PREFER_WAIT_MAX", Batching.prefer_wait_max), 10.0),
    )


def _stream(env: Mapping[str, str]) -> Stream:
    return Stream(
        url=env.get("STREAM_URL", ""),
        retry_ms=_int(env, "STREAM_RETRY_MS", Stream.retry_ms, 100),
        heartbeat=max(_float(env, "STREAM_HEARTBEAT", Stream.heartbeat), 0.2),
        board_interval_ms=_int(env, "STREAM_BOARD_INTERVAL_MS", Stream.board_interval_ms, 0),
        queue_max=_int(env, "STREAM_QUEUE_MAX", Stream.queue_max, 1),
        send_timeout=max(_float(env, "STREAM_SEND_TIMEOUT", Stream.send_timeout), 0.5),
        max_per_user=_int(env, "STREAM_MAX_PER_USER", Stream.max_per_user, 1),
        max_anonymous_per_address=_int(env, "STREAM_MAX_ANONYMOUS_PER_ADDRESS", Stream.max_anonymous_per_address, 0),
        replay_window=_int(env, "STREAM_REPLAY_WINDOW", Stream.replay_window, 1),
        redis_connections=_int(env, "STREAM_REDIS_CONNECTIONS", Stream.redis_connections, 2),
        send_buffer=_int(env, "STREAM_SEND_BUFFER", Stream.send_buffer, 0),
    )


def _anomaly(env: Mapping[str, str]) -> Thresholds:
    window = _int(env, "ANOMALY_RATE_WINDOW", Thresholds.rate_window, 1)
    near_limit = near_limit_count(env.get("RATE_LIMIT_SUBMIT", RateLimits.submit), window,
                                  _float(env, "ANOMALY_RATE_FRACTION", 0.8))
    return Thresholds(
        rate_window=window,
        rate_count=_int(env, "ANOMALY_RATE_COUNT", near_limit or Thresholds.rate_count, 1),
        zscore=_float(env, "ANOMALY_ZSCORE", Thresholds.zscore),
        zscore_min_samples=_int(env, "ANOMALY_ZSCORE_MIN_SAMPLES", Thresholds.zscore_min_samples, 2),
        zscore_history=_int(env, "ANOMALY_ZSCORE_HISTORY", Thresholds.zscore_history, 2),
        jump_top=_int(env, "ANOMALY_JUMP_TOP", Thresholds.jump_top, 1),
        jump_from_rank=_int(env, "ANOMALY_JUMP_FROM_RANK", Thresholds.jump_from_rank, 2),
    )
