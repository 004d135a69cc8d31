"""The promises of the pipeline, checked against PostgreSQL and Redis."""

from __future__ import annotations

import time

from scoreboard.redis_client import Keys


def check(db, r, prefix: str, accepted_tokens: set[str] | None = None) -> None:
    """Score = sum of history for every user; every token used once; ranking = PostgreSQL."""
    with db.cursor() as cur:
        cur.execute(
            "SELECT u.id, u.current_score, coalesce(sum(h.score_change), 0), count(h.id)"
            " FROM users u LEFT JOIN score_history h ON h.user_id = u.id GROUP BY u.id"
        )
        for uid, score, total, _ in cur.fetchall():
            assert score == total, f"user {uid}: score {score} != sum of history {total}"
        cur.execute("SELECT action_id, count(*) FROM score_history WHERE action_id IS NOT NULL"
                    " GROUP BY action_id HAVING count(*) > 1")
        assert cur.fetchall() == [], "a token was applied twice"
        cur.execute("SELECT count(*) FROM action_tokens t LEFT JOIN score_history h ON h.id = t.history_id"
                    " WHERE h.id IS NULL")
        assert cur.fetchone()[0] == 0, "a used token has no history row"
        if accepted_tokens is not None:
            cur.execute("SELECT action_id FROM score_history WHERE action_id IS NOT NULL")
            applied = {row[0] for row in cur.fetchall()}
            assert applied == accepted_tokens, (
                f"{len(accepted_tokens - applied)} accepted not applied, {len(applied - accepted_tokens)} unexpected")
        cur.execute("SELECT id, current_score FROM users WHERE score_reached_at IS NOT NULL AND NOT banned")
        expected = dict(cur.fetchall())
    keys = Keys(prefix)
    members = {int(k): v.decode() for k, v in r.hgetall(keys.ranking_member).items()}
    ranked = {uid: int(r.zscore(keys.ranking, m)) for uid, m in members.items() if r.zscore(keys.ranking, m) is not None}
    assert ranked == expected, "the Redis ranking differs from PostgreSQL"
    assert r.zcard(keys.ranking) == len(expected), "stale members in the Redis ranking"


def wait_until_settled(r, prefix: str, timeout: float = 60) -> None:
    """Wait until no batch is left to apply."""
    keys = Keys(prefix)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.zcard(keys.batches) == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{r.zcard(keys.batches)} batches still unapplied after {timeout}s: {describe(r, keys)}")


def describe(r, keys: Keys) -> list:
    """Where the unapplied batches' jobs are (for the failure message)."""
    from rq.job import Job
    from rq.exceptions import NoSuchJobError

    out = []
    for raw in r.zrange(keys.batches, 0, 20):
        batch = raw.decode()
        try:
            job = Job.fetch(f"apply-{batch}", connection=r)
            state = (job.get_status(), job.retries_left, job.worker_name, r.ttl(job.key))
        except NoSuchJobError:
            state = "no job"
        out.append((batch, r.llen(keys.batch(batch)), state))
    return out
