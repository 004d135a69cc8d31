"""Read replicas: read-only queries go to a streaming replica while it answers and keeps
up, and fall back to the primary when it is down or lagging."""

import os
import time

import psycopg2
import pytest
import redis as redis_lib
import requests
from sqlalchemy import create_engine, text

from scoreboard.__main__ import migrate
from scoreboard.db import ReadRouter
from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.own_servers import OwnPostgres, OwnRedis


@pytest.fixture(scope="module")
def cluster():
    primary = OwnPostgres()
    replica = OwnPostgres(primary=primary)
    yield primary, replica
    replica.close()
    primary.close()


def wait_replayed(primary, replica, timeout=30):
    with psycopg2.connect(primary.url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn()")
        target = cur.fetchone()[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg2.connect(replica.url) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
            if cur.fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError("the replica did not catch up")


def where(conn):
    return conn.execute(text("SELECT pg_is_in_recovery()")).scalar()


def test_reads_go_to_the_replica_and_fall_back_when_it_is_down_or_lagging(cluster):
    primary, replica = cluster
    with psycopg2.connect(primary.url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS t (v int)")
        cur.execute("INSERT INTO t VALUES (1)")
    wait_replayed(primary, replica)
    router = ReadRouter(create_engine(primary.url), [create_engine(replica.url)], max_lag_s=1.0, check_interval_s=0)

    assert router.read(where) is True  # on the replica
    assert router.read(lambda c: c.execute(text("SELECT count(*) FROM t")).scalar()) == 1

    # lagging: replay paused while the primary keeps writing
    with psycopg2.connect(replica.url) as conn, conn.cursor() as cur:
        conn.autocommit = True
        cur.execute("SELECT pg_wal_replay_pause()")
    try:
        deadline = time.monotonic() + 20
        while router.engine() is not router.primary and time.monotonic() < deadline:
            with psycopg2.connect(primary.url) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO t VALUES (2)")
            time.sleep(0.3)
        assert router.read(where) is False  # on the primary
    finally:
        with psycopg2.connect(replica.url) as conn, conn.cursor() as cur:
            conn.autocommit = True
            cur.execute("SELECT pg_wal_replay_resume()")
    wait_replayed(primary, replica)
    assert router.read(where) is True

    # down: the read still succeeds, on the primary, even when the replica was
    # judged healthy a moment ago (a query that fails to connect is sent to the primary)
    trusting = ReadRouter(router.primary, [create_engine(replica.url)], max_lag_s=1.0, check_interval_s=600)
    assert trusting.read(where) is True
    replica.stop()
    try:
        assert trusting.read(where) is False
        assert router.read(where) is False
        assert router.read(lambda c: c.execute(text("SELECT count(*) FROM t")).scalar()) >= 2
    finally:
        replica.start()
    router.dispose()
    trusting.dispose()
    router.primary.dispose()


def test_the_board_reads_from_the_replica_while_the_ranking_is_rebuilt(cluster, base_env):
    """The API's fallback read (ranking missing) goes to the replica; writes to the primary."""
    primary, replica = cluster

    admin = psycopg2.connect(primary.url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS board")
        cur.execute("CREATE DATABASE board")
    admin.close()
    db_primary = primary.url.rsplit("/", 1)[0] + "/board"
    db_replica = replica.url.rsplit("/", 1)[0] + "/board"
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = db_primary
    migrate()
    os.environ["DATABASE_URL"] = saved
    server = OwnRedis()
    env = {**base_env, "DATABASE_URL": db_primary, "DATABASE_REPLICA_URLS": db_replica, "REDIS_URL": server.url}
    web, base = processes.start_web(env, LOG_DIR, workers=1)
    try:
        Player(base, "writer")  # a write: it must reach the primary
        with psycopg2.connect(db_primary) as conn, conn.cursor() as cur:
            cur.execute("UPDATE users SET current_score = 7, score_reached_at = now() WHERE username = 'writer'")
        wait_replayed(primary, replica)
        # only on the replica: a row the primary does not have shows where the read went
        with psycopg2.connect(replica.url) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery()")
            assert cur.fetchone()[0] is True
        entries = requests.get(f"{base}/api/scoreboard").json()["entries"]
        assert [(e["username"], e["score"]) for e in entries] == [("writer", 7)]
        with psycopg2.connect(replica.url) as conn, conn.cursor() as cur:
            conn.autocommit = True
            cur.execute("SELECT pg_wal_replay_pause()")
        try:
            with psycopg2.connect(db_primary) as conn, conn.cursor() as cur:
                cur.execute("UPDATE users SET current_score = 9 WHERE username = 'writer'")
            server_client = redis_lib.Redis.from_url(server.url)
            server_client.flushdb()  # cache gone: the next read goes to PostgreSQL
            entries = requests.get(f"{base}/api/scoreboard").json()["entries"]
            # the replica has not replayed the change yet, and is within the lag bound
            assert [(e["username"], e["score"]) for e in entries] == [("writer", 7)]
        finally:
            with psycopg2.connect(replica.url) as conn, conn.cursor() as cur:
                conn.autocommit = True
                cur.execute("SELECT pg_wal_replay_resume()")
    finally:
        web.stop()
        server.close()
