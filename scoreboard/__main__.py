"""``python -m scoreboard``: operator commands (migrate, check, grant-admin, revoke-admin)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scoreboard.settings import SettingsError, database_url_from_env

ROOT = Path(__file__).resolve().parent.parent


def migrate(revision: str = "head") -> None:
    """Upgrade the database to ``revision`` with the project's Alembic migrations."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url_from_env()
    command.upgrade(config, revision)


def set_admin(username: str, grant: bool) -> int:
    from sqlalchemy import create_engine

    from scoreboard.accounts import set_admin as store

    engine = create_engine(database_url_from_env(), hide_parameters=True)
    try:
        if not store(engine, username, grant):
            print(f"no user named {username!r}", file=sys.stderr)
            return 1
    finally:
        engine.dispose()
    print(f"{'granted' if grant else 'revoked'} the admin role {'to' if grant else 'of'} {username}")
    return 0


def check(database: bool) -> int:
    """The start-up check (``scoreboard.startup``) on its own: 0 when the settings are right
    and the services answer, else 4 with the reason on stderr.

    The gunicorn masters run it as this command, in a process of its own, so that they
    never import redis-py (and with it ``ssl``) before their gevent workers patch it.
    """
    from scoreboard.settings import Settings
    from scoreboard.startup import StartupError, check as run_check

    try:
        settings = Settings.from_env()
        run_check(settings, database=database and settings.startup_check_database)
    except (SettingsError, StartupError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr, flush=True)
        return 4
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scoreboard")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    checking = sub.add_parser("check", help="wait for Redis and PostgreSQL, check the schema (exit 4 if wrong)")
    checking.add_argument("--no-database", action="store_true", help="Redis only (the stream process)")
    for name in ("grant-admin", "revoke-admin"):
        p = sub.add_parser(name, help=f"{name.split('-')[0]} the admin role")
        p.add_argument("username")
    args = parser.parse_args(argv)
    try:
        if args.command == "migrate":
            migrate()
            return 0
        if args.command == "check":
            return check(database=not args.no_database)
        return set_admin(args.username, args.command == "grant-admin")
    except SettingsError as exc:
        print(f"scoreboard: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
