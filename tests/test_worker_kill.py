"""A worker killed with SIGKILL in the middle of a batch: everything still applied once."""

import signal
import threading
import time
from datetime import datetime, timezone

import psycopg2

from scoreboard.boards import DEFAULT_BOARDS, period_at
from scoreboard.redis_client import Keys
from tests import invariants, processes
from tests.client import Player
from tests.sse import Stream
from tests.streams import live  # noqa: F401 (fixture)


def test_worker_killed_mid_batch_loses_nothing(api, stack, db, r, settings, database_url):
    victim, others = Player(api), [Player(api) for _ in range(3)]
    accepted = set()

    # Hold the victim's row so the batch that contains it blocks inside its transaction.
    blocker = psycopg2.connect(database_url)
    cur = blocker.cursor()
    cur.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (victim.id,))
    try:
        for player in [victim, *others]:
            action = player.start()
            assert player.submit(action, 3).status_code == 202
            accepted.add(action["action_token"])

        # Wait until a worker is stuck in that transaction, then kill it.
        killed = processes.worker_of_started_job(stack.workers, r, settings.batching.queue, waiting_on_lock=db)
        killed.kill(signal.SIGKILL)
        killed.proc.wait(10)
    finally:
        blocker.rollback()
        blocker.close()

    # No one steps in: the other worker and the scheduler recover the abandoned batch.
    invariants.wait_until_settled(r, settings.redis_prefix, timeout=90)
    invariants.check(db, r, settings.redis_prefix, accepted)
    with db.cursor() as c:
        c.execute("SELECT current_score FROM users WHERE id = %s", (victim.id,))
        assert c.fetchone()[0] == 3


def test_a_worker_killed_while_it_loads_a_ranking_holds_the_others_up_only_briefly(api, stack, db, r, settings,
                                                                                  database_url):
    """The first batch of a new period loads its ranking from PostgreSQL under a lock; a
    worker killed meanwhile must not keep the batches after it from their ranking until
    their attempts run out (they would fail for good)."""
    keys = Keys(settings.redis_prefix)
    players = [Player(api) for _ in range(4)]
    first = players[0].start()
    assert players[0].submit(first, 1, wait=10).status_code == 200
    accepted = {first["action_token"]}
    daily = period_at(DEFAULT_BOARDS[1], datetime.now(timezone.utc)).key
    r.delete(keys.board_ready("daily", daily))  # as for a new period: the next batch loads it

    blocker = psycopg2.connect(database_url)  # the loading query waits behind this lock
    blocker.cursor().execute("LOCK TABLE board_scores IN ACCESS EXCLUSIVE MODE")
    try:
        action = players[0].start()
        assert players[0].submit(action, 2).status_code == 202
        accepted.add(action["action_token"])
        killed = processes.worker_of_started_job(stack.workers, r, settings.batching.queue, waiting_on_lock=db)
        assert r.exists(keys.board_rebuild_lock("daily", daily)), "the worker holds the loading lock"
        killed.kill(signal.SIGKILL)
        killed.proc.wait(10)
    finally:
        blocker.rollback()
        blocker.close()
    stack.ensure_workers()
    for player in players[1:]:  # batches that need the same ranking
        action = player.start()
        assert player.submit(action, 3).status_code == 202
        accepted.add(action["action_token"])

    invariants.wait_until_settled(r, settings.redis_prefix, timeout=90)
    invariants.check(db, r, settings.redis_prefix, accepted)


def test_workers_killed_repeatedly_under_steady_load(live, stack, db, r, settings):
    api = live  # the board version goes on from where the stream processes saw it
    players = [Player(api) for _ in range(6)]
    # viewers connected throughout (the API serves the stream route too)
    viewers = {p.id: Stream(api, p.tokens["access_token"]) for p in players[:3]}
    for v in viewers.values():
        assert v.status == 200 and v.next().retry
    accepted, errors = set(), []
    jobs = {p.id: set() for p in players}
    stop = threading.Event()

    def client(player):
        while not stop.is_set():
            action = player.start()
            resp = player.submit(action, 2)
            if resp.status_code == 202:
                accepted.add(action["action_token"])
                jobs[player.id].add(resp.json()["job_id"])
            else:
                errors.append(resp.status_code)

    threads = [threading.Thread(target=client, args=(p,)) for p in players]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            time.sleep(1.0)
            victim = stack.workers[0]
            victim.kill(signal.SIGKILL)
            victim.proc.wait(10)
            stack.ensure_workers()
    finally:
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    invariants.wait_until_settled(r, settings.redis_prefix, timeout=120)
    invariants.check(db, r, settings.redis_prefix, accepted)
    for uid, viewer in viewers.items():  # each viewer heard of every one of its own submissions
        heard = set()
        deadline = time.monotonic() + 20
        while not jobs[uid] <= heard and time.monotonic() < deadline:
            event = viewer.next(timeout=max(0.1, deadline - time.monotonic()))
            if event.event == "score":
                heard.add(event.json()["job_id"])
        assert jobs[uid] <= heard, f"{len(jobs[uid] - heard)} personal events missed"
        viewer.close()
