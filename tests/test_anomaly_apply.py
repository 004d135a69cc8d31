"""The anomaly rules inside the batch transaction, against real PostgreSQL and Redis:
the figures they read, the flags they write, and that a flagged submission is applied."""

import json

import pytest

from scoreboard import action_tokens
from tests import invariants
from tests.client import Player, wait_applied
from tests.domain import make_user, new_applier, submit


@pytest.fixture
def applier(database_url, r, settings):
    applier = new_applier(database_url, r, settings, "anomaly")
    yield applier
    applier.engine.dispose()


def apply(applier, accepted):
    applier.apply_batch(accepted.batch_id)
    return json.loads(applier.redis.hget(applier.keys.submission(accepted.submission_id), "result"))


def flags(db, user_id):
    with db.cursor() as cur:
        cur.execute("SELECT rules, score_change, state FROM score_flags WHERE user_id = %s ORDER BY id", (user_id,))
        return cur.fetchall()


def test_too_fast_is_flagged_and_applied(applier, settings, db, r):
    uid = make_user(db)
    result = apply(applier, submit(applier, settings, uid, 50, "level_complete", elapsed_ms=20))
    assert result["state"] == "applied" and result["flagged"] is True and result["score"] == 50
    [(rules, change, state)] = flags(db, uid)
    assert set(rules) == {"too_fast"} and rules["too_fast"]["min_duration_ms"] == 5_000
    assert 20 <= rules["too_fast"]["duration_ms"] < 5_000  # from issue to acceptance, by the server's clock
    assert (change, state) == (50, "open")
    invariants.check(db, r, applier.keys.prefix)


def test_too_fast_is_measured_by_the_servers_clock_not_completed_at(applier, settings, db, r):
    """A client that dates ``completed_at`` ahead (within the allowed clock skew) does not
    make a quick action look slow; an honest one whose clock is behind is not flagged."""
    quick, slow = make_user(db), make_user(db)
    issued_soon = submit(applier, settings, quick, 50, "level_complete", elapsed_ms=20,
                         completed_at=action_tokens.now_ms() + 25_000)
    assert apply(applier, issued_soon)["flagged"] is True
    assert set(flags(db, quick)[0][0]) == {"too_fast"}
    behind = submit(applier, settings, slow, 50, "level_complete", elapsed_ms=60_000,
                    completed_at=action_tokens.now_ms() - 59_000)
    assert apply(applier, behind)["flagged"] is False
    assert flags(db, slow) == []


def test_completed_at_dated_ahead_through_the_api_is_still_too_fast(api):
    p = Player(api)
    action = p.start("level_complete")  # 5 s at the fastest
    resp = p.submit(action, 50, wait=10, completed_at=action["issued_at"] + 20_000)  # within the 30 s skew
    assert resp.status_code in (200, 202), resp.text
    result = resp.json() if resp.status_code == 200 else wait_applied(p, resp.json()["job_id"])["result"]
    assert result["state"] == "applied" and result["flagged"] is True


def test_submission_rate_near_the_limit(applier, settings, db, r):
    uid = make_user(db)
    # two batches of history, then three in one batch: the 5th in the window fires
    for _ in range(2):
        assert apply(applier, submit(applier, settings, uid, 1))["flagged"] is False
    batch = [submit(applier, settings, uid, 1) for _ in range(3)]
    applier.apply_batch(batch[0].batch_id)
    flagged = [json.loads(r.hget(applier.keys.submission(a.submission_id), "result"))["flagged"] for a in batch]
    assert flagged == [False, False, True]
    [(rules, _, _)] = flags(db, uid)
    assert rules == {"near_rate_limit": {"submissions": 5, "window_s": 60, "threshold": 5}}


def test_delta_far_above_the_users_own_history(applier, settings, db, r):
    uid = make_user(db)
    for delta in (20, 22, 25, 19, 21, 23):
        with db.cursor() as cur:  # older history, outside the rate window
            cur.execute("INSERT INTO score_history (user_id, action_type, score_change, new_score, created_at)"
                        " VALUES (%s, 'level_complete', %s, 0, now() - interval '1 hour')", (uid, delta))
    # another type's history does not count for this one
    with db.cursor() as cur:
        cur.execute("INSERT INTO score_history (user_id, action_type, score_change, new_score, created_at)"
                    " VALUES (%s, 'tap', 900, 0, now() - interval '1 hour')", (uid,))
    assert apply(applier, submit(applier, settings, uid, 25, "level_complete"))["flagged"] is False
    assert apply(applier, submit(applier, settings, uid, 900, "level_complete"))["flagged"] is True
    rules = flags(db, uid)[0][0]
    assert set(rules) == {"far_above_history"}
    figures = rules["far_above_history"]
    assert figures["samples"] == 7 and figures["median"] == 22 and figures["zscore"] > 3.5


def test_jump_into_the_top_from_far_below(applier, settings, db, r):
    for score in (100, 90, 80, 70, 60, 50):
        make_user(db, score)
    climber, steady, near = make_user(db, 1), make_user(db, 55), make_user(db, 65)
    # 65 is the 5th score: not far below, even though +50 lands it at the top
    assert apply(applier, submit(applier, settings, near, 50))["flagged"] is False
    # now 115, 100, 90, 80, 70 (5th), ...: from 1 to 201 is from far below into the top 2
    result = apply(applier, submit(applier, settings, climber, 200))
    assert result["flagged"] is True and result["rank"] == 1
    rules = flags(db, climber)[0][0]
    assert rules == {"jump_into_top": {"score_before": 1, "score_after": 201, "below_score": 70,
                                       "top_score": 100, "from_rank": 5, "top": 2}}
    # a climb that does not reach the top 2 is not flagged
    assert apply(applier, submit(applier, settings, steady, 10))["flagged"] is False


def test_a_batch_is_read_with_a_fixed_number_of_queries(applier, settings, db, r, database_url):
    """The rules' figures are read with set-based queries: as many for 40 users as for 1."""
    users = [make_user(db) for _ in range(40)]
    statements = []
    from sqlalchemy import event

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(applier.engine, "before_cursor_execute", count)
    try:
        apply(applier, submit(applier, settings, users[0], 1))  # the first one rebuilds the ranking
        statements.clear()
        apply(applier, submit(applier, settings, users[0], 1))
        single = len(statements)
        statements.clear()
        batch = [submit(applier, settings, uid, 1) for uid in users]
        applier.apply_batch(batch[0].batch_id)
        assert len(statements) == single
    finally:
        event.remove(applier.engine, "before_cursor_execute", count)
