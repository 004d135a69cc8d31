"""Alembic: one head, upgrade from empty to head, downgrade to base."""

from pathlib import Path

import psycopg2
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from scoreboard import startup
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


def test_the_start_up_check_reads_the_same_head_as_alembic():
    assert startup.expected_revision() == ScriptDirectory.from_config(config("")).get_current_head()


def test_the_start_up_check_asks_alembic_when_the_history_is_not_a_plain_chain(tmp_path, monkeypatch):
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (versions / "a.py").write_text("revision = 'a'\ndown_revision = None\n")
    (versions / "b.py").write_text("revision: str = 'b'\ndown_revision: str | None = 'a'\n")
    (versions / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")
    (versions / "m.py").write_text("revision = 'm'\ndown_revision = ('b', 'c')\n")
    monkeypatch.setattr(startup, "ROOT", tmp_path)
    monkeypatch.setattr(startup, "alembic_head", lambda: "asked alembic")
    assert startup.expected_revision() == "asked alembic"  # a merge
    (versions / "m.py").unlink()
    assert startup.expected_revision() == "asked alembic"  # two heads
    (versions / "c.py").unlink()
    assert startup.expected_revision() == "b"
    (versions / "b.py").write_text("down_revision = 'a'\n")
    assert startup.expected_revision() == "asked alembic"  # no revision line read
