"""TLS to Redis (``rediss://``, directly or through a Sentinel) and PostgreSQL
(``sslmode=require``) in every process, against servers of the test's own that accept TLS
alone (certificates made by the test); and gevent patching ``ssl`` before anything imports
it, in the web and the stream processes."""

from __future__ import annotations

import os
import secrets
import time

import psycopg2
import pytest
import redis as redis_lib
import requests

from scoreboard.__main__ import migrate
from scoreboard.redis_client import Keys
from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.own_servers import Certificates, OwnPostgres, OwnRedis, OwnSentinel
from tests.sse import Stream
from tests.streams import stream_env, stream_environment, stream_server  # noqa: F401 (fixtures)
from tests.test_admin import make_admin

MONKEY_PATCH_WARNING = "MonkeyPatchWarning"


def test_gevent_patches_ssl_before_anything_imports_it(stack, stream_server):  # noqa: F811
    """The gunicorn masters never import redis-py (and ssl with it): their start-up check
    runs in a process of its own, so the gevent workers they fork patch ssl first."""
    for log in (stack.web.output(), stream_server.proc.output()):
        assert "Booting worker" in log
        assert MONKEY_PATCH_WARNING not in log


@pytest.fixture(params=["redis_url", "sentinel"])
def tls_servers(request, base_env):
    """Redis and PostgreSQL that take TLS alone; with ``sentinel``, the Redis is found through
    a Sentinel that takes TLS alone too (``REDIS_URL`` then lends TLS and the database)."""
    certs = Certificates()
    servers = []
    try:
        rs = OwnRedis(tls=certs)
        servers.append(rs)
        sentinel = OwnSentinel(rs, "tls", quorum=1) if request.param == "sentinel" else None
        servers += [sentinel] if sentinel else []
        pg = OwnPostgres(tls=certs)
        servers.append(pg)
        saved = os.environ["DATABASE_URL"]
        os.environ["DATABASE_URL"] = pg.url
        migrate()
        os.environ["DATABASE_URL"] = saved
        yield certs, rs, pg, sentinel
    finally:
        for server in servers:
            server.close()
        certs.close()


@pytest.mark.slow
def test_every_process_speaks_tls_to_redis_and_postgresql(tls_servers, base_env):
    certs, rs, pg, sentinel = tls_servers
    # the servers take nothing else
    for port in (rs.port, *([sentinel.port] if sentinel else [])):
        with pytest.raises(redis_lib.ConnectionError):
            redis_lib.Redis(port=port, socket_timeout=2).ping()
    with pytest.raises(psycopg2.OperationalError, match="no encryption|SSL off"):
        psycopg2.connect(pg.url.replace("sslmode=require", "sslmode=disable"), connect_timeout=2)

    prefix = f"sbtls{secrets.token_hex(3)}:"
    env = {**base_env, "REDIS_URL": rs.url, "DATABASE_URL": pg.url, "REDIS_PREFIX": prefix}
    if sentinel:
        env.update(REDIS_SENTINELS=f"127.0.0.1:{sentinel.port}", REDIS_SENTINEL_MASTER=sentinel.name)
    web, base = processes.start_web(env, LOG_DIR, workers=1)
    stream, stream_base = processes.start_stream(stream_environment(env), LOG_DIR)
    procs = [web, stream, processes.start_worker(env, LOG_DIR), processes.start_scheduler(env, LOG_DIR)]
    try:
        player = Player(base)  # PostgreSQL over TLS
        viewer = Stream(stream_base, player.tokens["access_token"])  # Redis over TLS, in a gevent worker
        assert viewer.status == 200 and viewer.next().retry and viewer.next().event == "scoreboard"
        # the rate limiter's storage, the accept, the worker, the stream's subscription
        job = player.submit(player.start(), 7, wait=10)
        assert job.status_code in (200, 202), job.text
        job_id = job.json()["job_id"]
        event = viewer.until(lambda e: e.event == "score" and e.json()["job_id"] == job_id, timeout=20)
        assert event.json()["score"] == 7

        own = psycopg2.connect(pg.url)
        own.autocommit = True
        admin = make_admin(base, own)
        own.close()
        queues = admin.http.get(f"{base}/admin/rq/0/data/queues.json")  # the rq-dashboard over TLS
        assert queues.status_code == 200 and {q["name"] for q in queues.json()["queues"]} >= {env["QUEUE_NAME"]}

        client = rs.client()
        deadline = time.monotonic() + 20
        while not client.exists(Keys(prefix).scheduler_leader):  # the scheduler leads
            assert time.monotonic() < deadline, procs[3].output()[-2000:]
            time.sleep(0.2)
        assert requests.get(f"{base}/readyz").status_code == 200
        viewer.close()
        for proc in (web, stream):
            assert MONKEY_PATCH_WARNING not in proc.output() and "Traceback" not in proc.output()
    finally:
        for proc in procs:
            proc.stop()
