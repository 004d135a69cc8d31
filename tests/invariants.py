"""The promises of the pipeline, checked against PostgreSQL and Redis."""

from __future__ import annotations

import time

from scoreboard.boards import ALL_TIME_ID, ALL_TIME_KEY
from scoreboard.redis_client import Keys
from tests import ranks


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
        # exactly once on every board and period: each score is the sum of the history rows
        # that counted on that period
        cur.execute(
            "SELECT b.board, b.period, b.user_id, b.score, coalesce(sum(h.score_change), 0) FROM board_scores b"
            " LEFT JOIN score_history h ON h.user_id = b.user_id AND (b.board || '/' || b.period) = ANY(h.counted_on)"
            " GROUP BY 1, 2, 3, 4 HAVING b.score <> coalesce(sum(h.score_change), 0)")
        assert cur.fetchall() == [], "a board period's score differs from the history that counted on it"
        cur.execute("SELECT id, current_score FROM users WHERE score_reached_at IS NOT NULL AND NOT banned")
        expected = {(ALL_TIME_ID, ALL_TIME_KEY): dict(cur.fetchall())}
        # an open period ranks its users who are not banned; a final one keeps its standings
        cur.execute("SELECT b.board, b.period, b.user_id, b.score FROM board_scores b JOIN users u ON u.id = b.user_id"
                    " JOIN board_periods p ON p.board = b.board AND p.key = b.period"
                    " WHERE CASE WHEN p.closed_at IS NULL THEN NOT u.banned ELSE b.final_rank IS NOT NULL END")
        for board, period, uid, score in cur.fetchall():
            expected.setdefault((board, period), {})[uid] = score
    keys = Keys(prefix)
    held = [tuple(m.decode().split("/", 1)) for m in r.smembers(keys.boards_held)] or [(ALL_TIME_ID, ALL_TIME_KEY)]
    for board, period in held:
        want = expected.get((board, period), {})
        have = ranks.ranked(r, keys, board, period)
        assert have == want, (f"the Redis ranking of {board} {period} differs: Redis has "
                              f"{ {u: s for u, s in have.items() if want.get(u) != s} }, PostgreSQL "
                              f"{ {u: s for u, s in want.items() if have.get(u) != s} }")
        assert r.zcard(keys.board_ranking(board, period)) == len(want), f"stale members in {board} {period}"


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
