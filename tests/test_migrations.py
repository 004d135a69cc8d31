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


def test_boards_arrive_on_a_populated_database_and_leave_it_as_it_was():
    """The existing totals are the all-time board: nothing is copied, nothing is lost either way."""
    url = services.create_database()
    try:
        cfg = config(url)
        command.upgrade(cfg, "0004")
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("INSERT INTO users (username, password_hash, current_score, score_reached_at, last_history_id)"
                        " VALUES ('ann', 'x', 12, now(), 1), ('bob', 'x', 0, NULL, 0) RETURNING id")
            ann = cur.fetchall()[0][0]
            cur.execute("INSERT INTO score_history (id, user_id, action_id, score_change, new_score)"
                        " VALUES (1, %s, 'tok', 12, 12)", (ann,))

        def state():
            with conn.cursor() as cur:
                cur.execute("SELECT id, username, current_score, last_history_id FROM users ORDER BY id")
                users = cur.fetchall()
                cur.execute("SELECT id, user_id, score_change, new_score FROM score_history ORDER BY id")
                return users, cur.fetchall()

        before = state()
        command.upgrade(cfg, "head")
        assert state() == before
        with conn.cursor() as cur:
            cur.execute("SELECT board, key, ends_at, closed_at FROM board_periods")
            assert cur.fetchall() == [("all-time", "all", None, None)]
            cur.execute("SELECT counted_on, accepted_at FROM score_history")
            assert cur.fetchall() == [(None, None)]  # counted on the all-time board only, as it was
        command.downgrade(cfg, "0004")
        assert state() == before and "board_scores" not in tables(url)
        command.upgrade(cfg, "head")
        assert state() == before and {"board_scores", "board_periods"} <= tables(url)
        conn.close()
    finally:
        services.drop_database(url)
