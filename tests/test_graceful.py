"""SIGTERM: the work in hand finishes, nothing is lost, the process exits in time; and
periodic jobs never run twice at once."""

import signal
import threading
import time

import psycopg2
import pytest
import requests

from workers import maintenance as periodic
from scoreboard.apply import Applier
from scoreboard.db import make_engine
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from tests import invariants, processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.own_servers import OwnRedis
from workers import context


def test_worker_sigterm_finishes_the_batch_in_hand(api, stack, db, r, settings, database_url):
    p = Player(api)
    blocker = psycopg2.connect(database_url)
    cur = blocker.cursor()
    cur.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (p.id,))
    action = p.start()
    assert p.submit(action, 4).status_code == 202
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # a worker is now inside the transaction
        with db.cursor() as c:
            c.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                      " AND datname = current_database()")
            if c.fetchone()[0]:
                break
        time.sleep(0.05)
    for worker in stack.workers:
        worker.kill(signal.SIGTERM)
    time.sleep(1)
    blocker.rollback()
    blocker.close()
    for worker in stack.workers:
        assert worker.proc.wait(30) == 0
    with db.cursor() as c:  # applied by the worker that was told to stop, before it stopped
        c.execute("SELECT current_score FROM users WHERE id = %s", (p.id,))
        assert c.fetchone()[0] == 4
    stack.ensure_workers()
    invariants.check(db, r, settings.redis_prefix, {action["action_token"]})


def test_web_sigterm_lets_requests_in_flight_finish(base_env, api):
    server = OwnRedis()  # no worker on it: a `Prefer: wait` request stays in flight
    env = {**base_env, "REDIS_URL": server.url}
    web, base = processes.start_web(env, LOG_DIR, workers=1)
    try:
        p = Player(base)
        action = p.start()
        result = {}

        def in_flight():
            started = time.monotonic()
            resp = p.submit(action, 1, wait=3)
            result.update(status=resp.status_code, seconds=time.monotonic() - started)

        thread = threading.Thread(target=in_flight)
        thread.start()
        time.sleep(1)
        web.kill(signal.SIGTERM)
        thread.join(30)
        assert result["status"] == 202 and result["seconds"] >= 2.5  # answered after its full wait
        assert web.proc.wait(30) == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/healthz", timeout=2)
    finally:
        web.stop()
        server.close()


def test_periodic_jobs_never_run_twice_at_once(database_url, r, settings):
    engine = make_engine(settings)
    keys = Keys(settings.redis_prefix + "cron:")
    context.install(Applier(engine, r, Scripts(r), keys, settings.actions.by_name, settings.batching.result_ttl,
                            settings.board_cache_ttl), settings)
    started, release = threading.Event(), threading.Event()
    calls = []

    @periodic.single_run
    def slow_job():
        calls.append(1)
        started.set()
        release.wait(10)
        return {"ran": True}

    first = {}
    t = threading.Thread(target=lambda: first.update(slow_job()))
    t.start()
    assert started.wait(10)
    assert slow_job() == {"skipped": True}
    release.set()
    t.join(10)
    assert first == {"ran": True} and len(calls) == 1
    assert slow_job() == {"ran": True}  # the lock is released afterwards
    engine.dispose()
