"""PostgreSQL access: the engine, built from the settings by each entry point."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from scoreboard.settings import Settings


def make_engine(settings: Settings, **overrides) -> Engine:
    """Create the engine of the PostgreSQL primary.

    Args:
        settings: the process settings.
        **overrides: extra ``create_engine`` keyword arguments.
    """
    options = dict(
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": "scoreboard"},
    )
    options.update(overrides)
    return create_engine(settings.database_url, **options)
