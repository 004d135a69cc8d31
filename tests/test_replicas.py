"""Read replicas: read-only queries go to a streaming replica while it answers and keeps
up, and fall back to the primary when it is down or lagging."""

import time

import psycopg2
import pytest
from sqlalchemy import create_engine, text

from scoreboard.db import ReadRouter
from tests.own_servers import OwnPostgres


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
