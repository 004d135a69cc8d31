"""PostgreSQL access: the primary engine, and the router of read-only queries to replicas."""

from __future__ import annotations

import time
from contextlib import contextmanager

from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from scoreboard import metrics
from scoreboard.settings import Settings


# libpq's connection parameters unless the URL sets them: a host that does not answer is
# given up after 5 s (then, in a multi-host URL, the next one is tried), and a server whose
# machine vanished is noticed within about 10 s, idle (keepalives) or not (unacknowledged data).
LIBPQ_DEFAULTS = {"connect_timeout": 5, "keepalives_idle": 5, "keepalives_interval": 1, "keepalives_count": 3,
                  "tcp_user_timeout": 10_000}


def connect_args(url: str, application_name: str, **defaults) -> dict:
    """psycopg2's connection arguments: ``LIBPQ_DEFAULTS`` (updated by ``defaults``) where the
    URL does not set them, and the application name."""
    given = make_url(url).query
    chosen = {**LIBPQ_DEFAULTS, **defaults}
    return {**{k: v for k, v in chosen.items() if k not in given}, "application_name": application_name}


def make_engine(settings: Settings, **overrides) -> Engine:
    """Create the engine of the PostgreSQL primary.

    With a multi-host ``DATABASE_URL`` and ``target_session_attrs=read-write``, every new
    connection goes to the host that accepts writes: after a replica is promoted, the pool's
    connections to the old primary fail their pre-ping and their replacements find the new one.

    Args:
        settings: the process settings.
        **overrides: extra ``create_engine`` keyword arguments.
    """
    options = dict(
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=connect_args(settings.database_url, "scoreboard"),
    )
    options.update(overrides)
    # hide_parameters: an error's text never shows a statement's values (a password hash)
    return create_engine(settings.database_url, hide_parameters=True, **options)


class ReadRouter:
    """Sends read-only queries to a replica that answers and is not lagging, else to the primary.

    Each replica's health (reachable, replay lag under ``max_lag_s``) is checked at most
    every ``check_interval_s`` per process; a replica that fails a query is skipped until
    its next check. Writes never come here: they always use the primary engine.

    Args:
        primary: the engine of the primary.
        replicas: engines of the read replicas (may be empty).
        max_lag_s: the most replay lag a replica may have and still be used.
        check_interval_s: how long a health verdict is trusted.
    """

    LAG_SQL = (
        "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0"
        " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
        " ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END"
    )

    def __init__(self, primary: Engine, replicas: list[Engine] | tuple = (), max_lag_s: float = 5.0,
                 check_interval_s: float = 5.0):
        self.primary = primary
        self.replicas = list(replicas)
        self.max_lag_s = max_lag_s
        self.check_interval_s = check_interval_s
        self._health: dict[int, tuple[float, bool]] = {}
        self._next = 0

    def engine(self) -> Engine:
        """The engine for the next read: a healthy replica (round robin), else the primary."""
        for _ in range(len(self.replicas)):
            index = self._next % len(self.replicas)
            self._next += 1
            if self._healthy(index):
                return self.replicas[index]
        return self.primary

    @contextmanager
    def connect(self):
        """A connection for reading, like ``Engine.connect()``: to a healthy replica, or to the
        primary when there is none or the chosen replica refuses the connection."""
        engine = self.engine()
        try:
            conn = engine.connect()
        except OperationalError:
            if engine is self.primary:
                raise
            self._health[self.replicas.index(engine)] = (time.monotonic(), False)
            conn = self.primary.connect()
        with conn:
            yield conn

    def read(self, query):
        """Run ``query(connection)`` on a replica; on a connection failure, on the primary."""
        engine = self.engine()
        if engine is self.primary:
            with engine.connect() as conn:
                return query(conn)
        try:
            with engine.connect() as conn:
                return query(conn)
        except OperationalError:
            self._health[self.replicas.index(engine)] = (time.monotonic(), False)
            with self.primary.connect() as conn:
                return query(conn)

    def _healthy(self, index: int) -> bool:
        checked_at, ok = self._health.get(index, (-1e9, False))
        if time.monotonic() - checked_at < self.check_interval_s:
            return ok
        try:
            with self.replicas[index].connect() as conn:
                ok = float(conn.exec_driver_sql(self.LAG_SQL).scalar()) <= self.max_lag_s
        except Exception:  # unreachable or broken: not healthy
            ok = False
        self._health[index] = (time.monotonic(), ok)
        return ok

    def dispose(self) -> None:
        for engine in self.replicas:
            engine.dispose()


def make_read_router(settings: Settings, primary: Engine) -> ReadRouter:
    """The read router of ``settings.replicas.urls`` (no replicas: always the primary)."""
    replicas = [
        create_engine(url, hide_parameters=True, pool_size=settings.db_pool_size, max_overflow=settings.db_pool_size,
                      pool_pre_ping=True, connect_args=connect_args(url, "scoreboard-read", connect_timeout=2))
        for url in settings.replicas.urls
    ]
    return ReadRouter(primary, replicas, settings.replicas.max_lag_s)


def instrument_pool(engine: Engine, pool: str = "primary") -> None:
    """Keep the pool gauges of ``engine`` current (set on every checkout and checkin)."""
    in_use = metrics.DB_POOL_IN_USE.labels(pool)
    size = engine.pool.size() if hasattr(engine.pool, "size") else 0
    metrics.DB_POOL_MAX.labels(pool).set(size + max(getattr(engine.pool, "_max_overflow", 0), 0))
    in_use.set(0)

    checkedout = getattr(engine.pool, "checkedout", None)
    if checkedout is None:  # a pool that does not count (NullPool)
        return

    def on_checkout(*_args) -> None:
        in_use.set(checkedout())

    def on_checkin(*_args) -> None:
        in_use.set(max(checkedout() - 1, 0))  # the pool counts it back in after this event

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)
