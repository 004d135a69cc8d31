"""A submission that makes its batch fail: the others are applied, and it ends as a
failed RQ job of its own, visible to its client and requeueable by an admin."""

import time

from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from tests import invariants
from tests.client import Player, wait_applied
from tests.test_admin import make_admin


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

    # RQ calls the failure callback (which marks the submission failed) before it files the
    # job in the failed registry: wait for the registry to catch up
    registry = FailedJobRegistry(settings.batching.queue, connection=r)
    deadline, mine = time.monotonic() + 10, []
    while not mine and time.monotonic() < deadline:
        failed = [Job.fetch(i, connection=r) for i in registry.get_job_ids()]
        mine = [j for j in failed if r.lrange(f"{settings.redis_prefix}batch:{j.args[0]}", 0, -1)
                == [jobs[poisoned.id].encode()]]
        time.sleep(0.05)
    assert len(mine) == 1, "the poisoned submission has no failed job of its own"

    # the admins see it described by the submission and the player it holds
    admin = make_admin(api, db)
    listed = admin.http.get(f"{api}/api/admin/failed-jobs").json()
    [job] = [j for j in listed["jobs"] if j["job_id"] == mine[0].id]
    assert listed["total"] >= 1 and job["dashboard_url"] == f"/admin/rq/0/view/job/{mine[0].id}"
    assert "out of range" in job["error"] and "\n" not in job["error"] and job["failed_at"] > 0
    assert [(s["job_id"], s["user_id"], s["username"], s["action_type"], s["score_delta"], s["state"])
            for s in job["submissions"]] == [(jobs[poisoned.id], poisoned.id, poisoned.username, "tap", 5, "failed")]

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
