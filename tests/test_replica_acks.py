"""``REDIS_MIN_REPLICA_ACKS``: an action token is handed out, and a submission answered 202,
only once a Redis replica holds it (Redis ``WAIT``); when none confirms in time, 503
``unavailable``, for a submission with its ``job_id``: it stays accepted and is applied."""

from __future__ import annotations

import os
import signal

import pytest
import redis as redis_lib

from tests import invariants, processes
from tests.client import Player, wait_applied
from tests.conftest import LOG_DIR, reset_state
from tests.own_servers import OwnRedis


@pytest.fixture
def replicated(base_env, database_url, r, settings):
    """A web on a Redis primary with one replica, asking for one replica's acknowledgement."""
    reset_state(database_url, r, settings.redis_prefix)
    primary = OwnRedis()
    replica = OwnRedis(replica_of=primary)
    env = {**base_env, "REDIS_URL": primary.url, "REDIS_MIN_REPLICA_ACKS": "1", "REDIS_REPLICA_ACK_TIMEOUT_MS": "300"}
    web, base = processes.start_web(env, LOG_DIR, workers=1)
    procs = [web]
    try:
        yield env, base, primary, replica, procs
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
        for proc in procs:
            proc.stop()
        replica.close()
        primary.close()


def test_no_acknowledgement_without_a_replica_that_holds_it(replicated, db):
    env, base, primary, replica, procs = replicated
    player = Player(base)
    assert player.submit(player.start(), 3).status_code == 202
    action = player.start()

    os.kill(replica.proc.pid, signal.SIGSTOP)  # the replica stops taking what the primary sends
    try:
        resp = player.submit(action, 4)
        assert resp.status_code == 503 and resp.headers["Retry-After"], resp.text
        error = resp.json()["error"]
        assert error["code"] == "unavailable" and error["status_url"] == f"/api/score/jobs/{error['job_id']}"
        # accepted all the same: the client finds it before submitting again
        assert player.job(error["job_id"]).json()["state"] == "queued"
        refused = player.http.post(f"{base}/api/actions", json={"action_type": "tap"})
        assert refused.status_code == 503 and "job_id" not in refused.json()["error"]  # no token handed out
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)

    assert player.submit(action, 4).status_code == 403  # token_used: it was accepted once
    procs.append(processes.start_worker(env, LOG_DIR))
    assert wait_applied(player, error["job_id"])["state"] == "applied"
    client = redis_lib.Redis.from_url(primary.url)
    invariants.wait_until_settled(client, env["REDIS_PREFIX"])
    with db.cursor() as cur:
        cur.execute("SELECT current_score FROM users WHERE id = %s", (player.id,))
        assert cur.fetchone()[0] == 7
    invariants.check(db, client, env["REDIS_PREFIX"])
