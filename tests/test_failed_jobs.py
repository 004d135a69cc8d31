"""A submission that makes its batch fail: the others are applied, and it ends as a
failed RQ job of its own, visible to its client and requeueable by an admin."""

import time

from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from tests import invariants
from tests.client import Player, wait_applied


def test_poison_submission_ends_alone_in_the_failed_registry(api, db, r, settings):
    healthy = [Player(api) for _ in range(4)]
    poisoned = Player(api)
    with db.cursor() as cur:  # one more point would overflow the bigint score
        cur.execute("UPDATE users SET current_score = %s WHERE id = %s", (2**63 - 1, poisoned.id))
    actions = [(p, p.start()) for p in [*healthy, poisoned]]
    jobs = {}
    for p, action in actions:  # posted back to back: they share batches
        resp = p.submit(action, 5)
        assert resp.status_code == 202
        jobs[p.id] = resp.json()["job_id"]

    for p in healthy:
        assert wait_applied(p, jobs[p.id])["state"] == "applied"
    state = wait_applied(poisoned, jobs[poisoned.id])
    assert state["state"] == "failed" and state["error"]["code"] == "apply_failed"

    registry = FailedJobRegistry(settings.batching.queue, connection=r)
    failed = [Job.fetch(i, connection=r) for i in registry.get_job_ids()]
    mine = [j for j in failed if r.lrange(f"{settings.redis_prefix}batch:{j.args[0]}", 0, -1)
            == [jobs[poisoned.id].encode()]]
    assert len(mine) == 1, "the poisoned submission has no failed job of its own"

    # An admin fixes the cause and requeues the job: it is applied, once.
    with db.cursor() as cur:
        cur.execute("UPDATE users SET current_score = 0 WHERE id = %s", (poisoned.id,))
    registry.requeue(mine[0])
    deadline = time.monotonic() + 30
    while poisoned.job(jobs[poisoned.id]).json()["state"] != "applied" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert poisoned.job(jobs[poisoned.id]).json()["result"]["score"] == 5
    invariants.wait_until_settled(r, settings.redis_prefix)
    invariants.check(db, r, settings.redis_prefix)
