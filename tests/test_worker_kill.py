"""A worker killed with SIGKILL in the middle of a batch: everything still applied once."""

import signal
import threading
import time

import psycopg2
from rq import Worker
from rq.job import Job
from rq.registry import StartedJobRegistry

from tests import invariants
from tests.client import Player
from tests.sse import Stream


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
        registry = StartedJobRegistry(settings.batching.queue, connection=r)
        deadline = time.monotonic() + 30
        worker_pid = None
        while time.monotonic() < deadline and worker_pid is None:
            with db.cursor() as c:
                c.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                          " AND datname = current_database()")
                waiting = c.fetchone()[0]
            for job_id in registry.get_job_ids():
                job = Job.fetch(job_id, connection=r)
                if waiting and job.worker_name:
                    worker_pid = Worker.find_by_key(Worker.redis_worker_namespace_prefix + job.worker_name,
                                                    connection=r).pid
            time.sleep(0.05)
        assert worker_pid, "no worker got stuck on the locked row"
        assert worker_pid in [w.pid for w in stack.workers]
        killed = next(w for w in stack.workers if w.pid == worker_pid)
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


def test_workers_killed_repeatedly_under_steady_load(api, stack, db, r, settings):
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
