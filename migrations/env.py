"""Alembic environment: the URL comes from the settings (DATABASE_URL), not from Flask."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from scoreboard.models import metadata
from scoreboard.settings import database_url_from_env

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def url() -> str:
    return config.attributes.get("database_url") or database_url_from_env()


def run_migrations_offline() -> None:
    context.configure(url=url(), target_metadata=metadata, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url(), poolclass=pool.NullPool, hide_parameters=True)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
