"""Alembic: one head, upgrade from empty to head, downgrade to base."""

from pathlib import Path

import psycopg2
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests import services

ROOT = Path(__file__).resolve().parent.parent


def config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


def tables(url: str) -> set[str]:
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        names = {row[0] for row in cur.fetchall()}
    conn.close()
    return names


def test_single_head():
    assert len(ScriptDirectory.from_config(config("postgresql://unused")).get_heads()) == 1


def test_upgrade_from_empty_to_head_and_back_to_base():
    url = services.create_database()
    try:
        cfg = config(url)
        command.upgrade(cfg, "head")
        assert {"users", "score_history", "action_tokens", "score_flags", "alembic_version"} <= tables(url)
        command.downgrade(cfg, "base")
        assert tables(url) == {"alembic_version"}
        command.upgrade(cfg, "head")
        assert "users" in tables(url)
    finally:
        services.drop_database(url)
