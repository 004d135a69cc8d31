"""Start-up checks: clear errors (not tracebacks) when a backing service is missing or
the schema is behind the code, after retrying with backoff for services still starting."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from scoreboard.redis_client import make_redis
from scoreboard.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


class StartupError(Exception):
    """The process cannot start; the message says why and what to do."""


def _where(url: str) -> str:
    """Host, port and path of a database URL (every host of a multi-host one), no password."""
    parts = urlsplit(url)
    hosts = parse_qs(parts.query).get("host")
    if hosts:
        return f"{','.join(hosts)}{parts.path}"
    return f"{parts.hostname}:{parts.port or ''}{parts.path}"


def _retry(check, what: str, wait: float) -> None:
    delay, deadline = 0.25, time.monotonic() + wait
    while True:
        try:
            check()
            return
        except Exception as exc:  # any failure to connect
            if time.monotonic() + delay > deadline:
                raise StartupError(f"{what} is not reachable ({type(exc).__name__}: {exc})".strip()) from None
            time.sleep(delay)
            delay = min(delay * 2, 5)


# ``revision = '0003'`` and ``down_revision = '0002'`` lines (annotated or not) of a migration.
_REVISION_LINE = re.compile(r"^(down_)?revision\s*(?::[^=\n]*)?=\s*['\"]([^'\"]+)['\"]\s*$", re.M)


def expected_revision() -> str:
    """The head revision of ``migrations/versions``.

    Read from the migration files' ``revision`` and ``down_revision`` lines, because
    importing Alembic costs every process about 0.2 s of CPU at start-up; Alembic itself
    answers when the history is not one plain chain (a merge, a line written otherwise).
    """
    revisions, parents = set(), set()
    for path in (ROOT / "migrations" / "versions").glob("*.py"):
        found = {bool(down): rev for down, rev in _REVISION_LINE.findall(path.read_text())}
        if False not in found:
            return alembic_head()
        revisions.add(found[False])
        if True in found:
            parents.add(found[True])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else alembic_head()


def alembic_head() -> str:
    """The head revision as Alembic reads it."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_current_head()


def check(settings: Settings, database: bool = True, wait: float | None = None) -> None:
    """Wait up to ``wait`` seconds (default ``settings.startup_wait``) for Redis, and for
    PostgreSQL when ``database`` (then check the schema).

    Raises:
        StartupError: with a message for the operator.
    """
    wait = settings.startup_wait if wait is None else wait
    client = make_redis(settings, socket_connect_timeout=2)
    _retry(client.ping, f"Redis at {settings.redis.where}", wait)
    client.close()
    if not database:
        return
    from sqlalchemy import create_engine, pool, text  # not loaded by processes without a database

    engine = create_engine(settings.database_url, poolclass=pool.NullPool, hide_parameters=True,
                           connect_args={"connect_timeout": 2})
    found: list = []

    def read_revision():
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
            found[:] = [conn.execute(text("SELECT version_num FROM alembic_version")).scalar() if exists else None]

    try:
        _retry(read_revision, f"PostgreSQL at {_where(settings.database_url)}", wait)
    finally:
        engine.dispose()
    head = expected_revision()
    if found[0] != head:
        raise StartupError(
            f"the database schema is at revision {found[0] or 'none'} but this code needs {head}:"
            " run `python -m scoreboard migrate` (the Procfile's release step) first"
        )
