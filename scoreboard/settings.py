"""Settings, read once from the environment by each entry point into a frozen object.

There are no default secrets: ``SECRET_KEY`` must be given. ``make run`` creates a
development key under ``.local/`` for you; production refuses to start without one.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

from scoreboard.action_types import ActionType, DEFAULT_ACTION_TYPES, parse_action_types


class SettingsError(Exception):
    """Raised when the environment does not describe a runnable service."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"expected a boolean, got {value!r}")


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
    """The PostgreSQL URL alone (what the migrations need), in SQLAlchemy's spelling."""
    env = os.environ if environ is None else environ
    url = env.get("DATABASE_URL")
    if not url:
        raise SettingsError("missing DATABASE_URL in the environment")
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    return url


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know, fixed at start.

    Attributes:
        env: ``development``, ``test`` or ``production``.
        database_url: SQLAlchemy URL of the PostgreSQL primary.
        redis_url: URL of the Redis holding queues, tokens, the ranking and events.
        secret_key: Flask secret; also signs JWTs unless ``jwt_secret_key`` is set.
        redis_prefix: Prefix of every key and pub/sub channel the service owns.
    """

    database_url: str
    redis_url: str
    secret_key: str
    jwt_secret_key: str
    env: str = "development"
    port: int = 8000
    redis_prefix: str = "sb:"
    queue_name: str = "scores"
    maintenance_queue_name: str = "maintenance"
    ratelimit_enabled: bool = True
    rate_limit_submit: str = "20 per second;600 per minute"
    rate_limit_actions: str = "20 per second;600 per minute"
    rate_limit_login: str = "10 per minute"
    rate_limit_register: str = "20 per hour"
    access_token_expires: int = 3600
    refresh_token_expires: int = 30 * 24 * 3600
    action_token_ttl: int = 300
    clock_skew: int = 30
    action_types: tuple[ActionType, ...] = field(default_factory=lambda: DEFAULT_ACTION_TYPES)
    max_content_length: int = 16 * 1024
    prefer_wait_max: float = 10.0
    batch_max: int = 500
    # Most accepted submissions waiting to be applied; beyond it submit answers 503.
    pending_cap: int = 100_000
    apply_job_timeout: int = 30
    result_ttl: int = 24 * 3600
    board_cache_ttl: int = 5
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    argon2_parallelism: int = 1
    db_pool_size: int = 10
    # Read replicas for read-only queries, and how much replay lag each may have.
    # How many proxies in front of the app to trust for X-Forwarded-For/-Proto (nginx: 1).
    trusted_proxies: int = 0
    database_replica_urls: tuple[str, ...] = ()
    replica_max_lag_s: float = 5.0
    log_level: str = "INFO"
    # The live stream (GET /api/scoreboard/stream), see web/stream/.
    stream_url: str = ""
    stream_retry_ms: int = 3000
    stream_heartbeat: float = 15.0
    stream_board_interval_ms: int = 100
    stream_queue_max: int = 512  # >= BATCH_MAX: one batch of one user never overflows it
    stream_send_timeout: float = 30.0
    stream_max_per_user: int = 5
    # Streams without a token (the board alone) per client address (a venue's NAT shares one).
    stream_max_anonymous_per_address: int = 50
    stream_replay_window: int = 10_000
    stream_redis_connections: int = 2  # one holds the subscription, one runs the commands
    stream_send_buffer: int = 32 * 1024
    # Port of the worker's or scheduler's own /metrics (0: none); the web serves /metrics itself.
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"
    # When set, the web's /metrics answers only ``Authorization: Bearer <metrics_token>``.
    metrics_token: str = ""
    # Browser origins allowed to call the API cross-origin (exact origins, or "*").
    cors_origins: tuple[str, ...] = ()
    # Strict-Transport-Security max-age in seconds (0: no header).
    hsts_max_age: int = 0
    # The rq-dashboard session cookie is sent over HTTPS only.
    admin_cookie_secure: bool = True
    # Anomaly rules (flag, never refuse); see scoreboard/anomaly.py.
    anomaly_rate_window: int = 60
    anomaly_rate_count: int = 480
    anomaly_zscore: float = 3.5
    anomaly_zscore_min_samples: int = 10
    anomaly_zscore_history: int = 50
    anomaly_jump_top: int = 10
    anomaly_jump_from_rank: int = 100

    @property
    def action_types_by_name(self) -> dict[str, ActionType]:
        return {a.name: a for a in self.action_types}

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
        missing = [name for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY") if not env.get(name)]
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
        types_raw = env.get("ACTION_TYPES")
        types_file = env.get("ACTION_TYPES_FILE")
        if types_file:
            try:
                with open(types_file, encoding="utf-8") as fh:
                    types_raw = fh.read()
            except OSError as exc:
                raise SettingsError(f"ACTION_TYPES_FILE cannot be read: {exc}") from None
        try:
            action_types = parse_action_types(json.loads(types_raw)) if types_raw else DEFAULT_ACTION_TYPES
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"ACTION_TYPES is not valid: {exc}") from None
        rate_window = _int(env, "ANOMALY_RATE_WINDOW", cls.anomaly_rate_window, 1)
        return cls(
            database_url=database_url_from_env(env),
            redis_url=env["REDIS_URL"],
            secret_key=secret,
            jwt_secret_key=jwt_secret,
            env=mode,
            port=_int(env, "PORT", 8000, 1),
            redis_prefix=env.get("REDIS_PREFIX", "sb:"),
            queue_name=env.get("QUEUE_NAME", cls.queue_name),
            maintenance_queue_name=env.get("MAINTENANCE_QUEUE_NAME", cls.maintenance_queue_name),
            ratelimit_enabled=_bool(env.get("RATELIMIT_ENABLED"), True),
            rate_limit_submit=env.get("RATE_LIMIT_SUBMIT", cls.rate_limit_submit),
            rate_limit_actions=env.get("RATE_LIMIT_ACTIONS", cls.rate_limit_actions),
            rate_limit_login=env.get("RATE_LIMIT_LOGIN", cls.rate_limit_login),
            rate_limit_register=env.get("RATE_LIMIT_REGISTER", cls.rate_limit_register),
            access_token_expires=_int(env, "ACCESS_TOKEN_EXPIRES", cls.access_token_expires, 1),
            refresh_token_expires=_int(env, "REFRESH_TOKEN_EXPIRES", cls.refresh_token_expires, 1),
            action_token_ttl=_int(env, "ACTION_TOKEN_TTL", cls.action_token_ttl, 1),
            clock_skew=_int(env, "CLOCK_SKEW", cls.clock_skew, 0),
            action_types=action_types,
            max_content_length=_int(env, "MAX_CONTENT_LENGTH", cls.max_content_length, 256),
            prefer_wait_max=min(_float(env, "PREFER_WAIT_MAX", cls.prefer_wait_max), 10.0),
            batch_max=_int(env, "BATCH_MAX", cls.batch_max, 1),
            pending_cap=_int(env, "PENDING_CAP", cls.pending_cap, 0),
            apply_job_timeout=_int(env, "APPLY_JOB_TIMEOUT", cls.apply_job_timeout, 1),
            result_ttl=_int(env, "RESULT_TTL", cls.result_ttl, 1),
            board_cache_ttl=_int(env, "BOARD_CACHE_TTL", cls.board_cache_ttl, 1),
            argon2_time_cost=_int(env, "ARGON2_TIME_COST", cls.argon2_time_cost, 1),
            argon2_memory_kib=_int(env, "ARGON2_MEMORY_KIB", cls.argon2_memory_kib, 8),
            argon2_parallelism=_int(env, "ARGON2_PARALLELISM", cls.argon2_parallelism, 1),
            db_pool_size=_int(env, "DB_POOL_SIZE", cls.db_pool_size, 1),
            database_replica_urls=tuple(
                u.strip().replace("postgres://", "postgresql://", 1)
                for u in env.get("DATABASE_REPLICA_URLS", "").split(",") if u.strip()
            ),
            trusted_proxies=_int(env, "TRUSTED_PROXIES", cls.trusted_proxies, 0),
            replica_max_lag_s=_float(env, "REPLICA_MAX_LAG", cls.replica_max_lag_s),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            stream_url=env.get("STREAM_URL", ""),
            stream_retry_ms=_int(env, "STREAM_RETRY_MS", cls.stream_retry_ms, 100),
            stream_heartbeat=max(_float(env, "STREAM_HEARTBEAT", cls.stream_heartbeat), 0.2),
            stream_board_interval_ms=_int(env, "STREAM_BOARD_INTERVAL_MS", cls.stream_board_interval_ms, 0),
            stream_queue_max=_int(env, "STREAM_QUEUE_MAX", cls.stream_queue_max, 1),
            stream_send_timeout=max(_float(env, "STREAM_SEND_TIMEOUT", cls.stream_send_timeout), 0.5),
            stream_max_per_user=_int(env, "STREAM_MAX_PER_USER", cls.stream_max_per_user, 1),
            stream_max_anonymous_per_address=_int(env, "STREAM_MAX_ANONYMOUS_PER_ADDRESS",
                                                  cls.stream_max_anonymous_per_address, 0),
            stream_replay_window=_int(env, "STREAM_REPLAY_WINDOW", cls.stream_replay_window, 1),
            stream_redis_connections=_int(env, "STREAM_REDIS_CONNECTIONS", cls.stream_redis_connections, 2),
            stream_send_buffer=_int(env, "STREAM_SEND_BUFFER", cls.stream_send_buffer, 0),
            metrics_port=_int(env, "METRICS_PORT", cls.metrics_port, 0),
            metrics_host=env.get("METRICS_HOST") or cls.metrics_host,
            metrics_token=env.get("METRICS_TOKEN", ""),
            cors_origins=tuple(o.strip().rstrip("/") for o in env.get("CORS_ORIGINS", "").split(",") if o.strip()),
            hsts_max_age=_int(env, "HSTS_MAX_AGE", 31536000 if mode == "production" else 0, 0),
            admin_cookie_secure=_bool(env.get("ADMIN_COOKIE_SECURE"), mode == "production"),
            anomaly_rate_window=rate_window,
            anomaly_rate_count=_int(
                env, "ANOMALY_RATE_COUNT",
                near_limit_count(env.get("RATE_LIMIT_SUBMIT", cls.rate_limit_submit), rate_window,
                                 _float(env, "ANOMALY_RATE_FRACTION", 0.8)) or cls.anomaly_rate_count, 1),
            anomaly_zscore=_float(env, "ANOMALY_ZSCORE", cls.anomaly_zscore),
            anomaly_zscore_min_samples=_int(env, "ANOMALY_ZSCORE_MIN_SAMPLES", cls.anomaly_zscore_min_samples, 2),
            anomaly_zscore_history=_int(env, "ANOMALY_ZSCORE_HISTORY", cls.anomaly_zscore_history, 2),
            anomaly_jump_top=_int(env, "ANOMALY_JUMP_TOP", cls.anomaly_jump_top, 1),
            anomaly_jump_from_rank=_int(env, "ANOMALY_JUMP_FROM_RANK", cls.anomaly_jump_from_rank, 2),
        )
