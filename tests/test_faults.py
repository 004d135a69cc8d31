"""Faults with real processes: Redis restarted, workers stopped, the queue full."""

import os
import time

import psycopg2
import pytest
import redis as redis_lib
import requests
from rq.registry import FailedJobRegistry

from scoreboard.__main__ import migrate

from tests import invariants, processes
from tests.client import Player
from tests.conftest import LOG_DIR, reset_state
from tests.own_servers import OwnPostgres, OwnRedis


@pytest.fixture
def own_redis_stack(base_env, database_url, r, settings):
    """A web and a worker on a Redis of the test's own (append-only, everysec)."""
    reset_state(database_url, r, settings.redis_prefix)
    server = OwnRedis()
    env = {**base_env, "REDIS_URL": server.url}
    web, base = processes.start_web(env, LOG_DIR, workers=1)
    stack = {"server": server, "env": env, "web": web, "base": base, "workers": []}
    yield stack
    for proc in [web, *stack["workers"]]:
        proc.stop()
    server.close()


def test_redis_restart_loses_nothing_accepted_and_submit_says_unavailable_meanwhile(own_redis_stack, db):
    stack = own_redis_stack
    base, server = stack["base"], stack["server"]
    players = [Player(base) for _ in range(3)]
    accepted = set()
    for p in players:  # no worker yet: accepted submissions wait in Redis
        for _ in range(3):
            action = p.start()
            assert p.submit(action, 2).status_code == 202
            accepted.add(action["action_token"])
    pending_action = players[0].start()
    time.sleep(1.5)  # appendfsync everysec: what was accepted a second ago is on disk
    server.kill()

    resp = players[0].submit(pending_action, 2)
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "unavailable" and resp.headers.get("Retry-After")
    assert players[1].http.get(f"{base}/api/users/me").status_code == 503

    server.start()
    stack["workers"].append(processes.start_worker(stack["env"], LOG_DIR))
    client = redis_lib.Redis.from_url(server.url)
    prefix = stack["env"]["REDIS_PREFIX"]
    invariants.wait_until_settled(client, prefix, timeout=60)
    invariants.check(db, client, prefix, accepted)
    # the token refused while Redis was down is still good
    assert players[0].submit(pending_action, 2).status_code == 202


def test_queue_beyond_its_cap_answers_503_with_retry_after(base_env, database_url, r, settings, db):
    reset_state(database_url, r, settings.redis_prefix)
    server = OwnRedis()
    env = {**base_env, "REDIS_URL": server.url, "PENDING_CAP": "3"}
    web, base = processes.start_web(env, LOG_DIR, workers=1)
    try:
        p = Player(base)
        codes = [p.submit(p.start(), 1) for _ in range(5)]
        assert [c.status_code for c in codes] == [202, 202, 202, 503, 503]
        assert codes[3].json()["error"]["code"] == "unavailable" and codes[3].headers["Retry-After"]
        worker = processes.start_worker(env, LOG_DIR)
        client = redis_lib.Redis.from_url(server.url)
        invariants.wait_until_settled(client, env["REDIS_PREFIX"], timeout=60)
        assert p.submit(p.start(), 1).status_code == 202  # room again once applied
        worker.stop()
    finally:
        web.stop()
        server.close()


def test_postgresql_restart_loses_nothing(base_env, db):
    pg, rs = OwnPostgres(), OwnRedis()
    env = {**base_env, "DATABASE_URL": pg.url, "REDIS_URL": rs.url}
    os.environ["DATABASE_URL"] = pg.url
    migrate()
    os.environ["DATABASE_URL"] = base_env["DATABASE_URL"]
    web, base = processes.start_web(env, LOG_DIR, workers=1)
    workers = [processes.start_worker(env, LOG_DIR) for _ in range(2)]
    try:
        players = [Player(base) for _ in range(4)]
        accepted = set()

        def burst(n):
            for i in range(n):
                p = players[i % len(players)]
                action = p.start()
                resp = p.submit(action, 3)
                assert resp.status_code == 202, resp.text
                accepted.add(action["action_token"])

        burst(20)
        pg.stop()
        burst(20)  # accepted while PostgreSQL is down: the web does not need it to accept
        assert requests.get(f"{base}/readyz").status_code == 503
        time.sleep(3)
        pg.start()
        burst(20)
        client = redis_lib.Redis.from_url(rs.url)
        invariants.wait_until_settled(client, env["REDIS_PREFIX"], timeout=120)
        own = psycopg2.connect(pg.url)
        own.autocommit = True
        invariants.check(own, client, env["REDIS_PREFIX"], accepted)
        own.close()
        assert FailedJobRegistry(env["QUEUE_NAME"], connection=client).count == 0
    finally:
        for proc in [web, *workers]:
            proc.stop()
        pg.close()
        rs.close()
