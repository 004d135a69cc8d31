"""The apply stage against real PostgreSQL and Redis, without HTTP: exactly once, failure
isolation, and recovery of the ranking."""

import secrets

import orjson
import pytest

from scoreboard import action_tokens
from scoreboard.apply import Applier, BatchFailed
from scoreboard.db import make_engine
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from tests import ranks
from tests import invariants
from tests.conftest import reset_state


@pytest.fixture
def applier(database_url, r, settings):
    reset_state(database_url, r, settings.redis_prefix + "unit:")
    engine = make_engine(settings)
    yield Applier(engine, r, Scripts(r), Keys(settings.redis_prefix + "unit:"), settings.actions.by_name,
                  settings.batching.result_ttl, settings.board_cache_ttl)
    engine.dispose()


def make_user(db, name=None, score=0):
    with db.cursor() as cur:
        cur.execute("INSERT INTO users (username, password_hash, current_score) VALUES (%s, 'x', %s) RETURNING id",
                    (name or secrets.token_hex(4), score))
        return cur.fetchone()[0]


def submit(applier, settings, user_id, delta, token=None):
    """Issue a token and accept a submission for it, as the web does."""
    record = action_tokens.issue(applier.redis, applier.keys, settings, user_id,
                                 settings.actions.by_name["tap"])
    if token:
        record = record.__class__(**{**record.__dict__, "token": token})
        applier.redis.hset(applier.keys.action_token(token), mapping={"used": 0, "user_id": user_id})
    return applier.submissions.accept(record, delta, action_tokens.now_ms(), 50)


def test_a_batch_applied_twice_counts_once(applier, settings, db, r):
    uid = make_user(db)
    first = submit(applier, settings, uid, 5)
    submit(applier, settings, uid, 7)
    batch = first.batch_id
    ids = [i.decode() for i in r.lrange(applier.keys.batch(batch), 0, -1)]
    subs = applier.submissions.seal(batch)
    # the worker died after commit, before Redis knew: the retry sees the same submissions
    applier.apply_submissions(subs, batch)
    applier.apply_submissions(subs, batch)
    with db.cursor() as cur:
        cur.execute("SELECT current_score FROM users WHERE id = %s", (uid,))
        assert cur.fetchone()[0] == 12
        cur.execute("SELECT count(*) FROM score_history")
        assert cur.fetchone()[0] == 2
    states = {r.hget(applier.keys.submission(i), "state") for i in ids}
    assert states == {b"applied"}
    invariants.check(db, r, applier.keys.prefix)


def test_the_same_token_in_another_submission_is_rejected(applier, settings, db, r):
    uid = make_user(db)
    token = secrets.token_urlsafe(24)
    a = submit(applier, settings, uid, 5, token=token)
    applier.apply_batch(a.batch_id)
    # Redis lost its memory of the token (restart without persistence): accepted again
    b = submit(applier, settings, uid, 5, token=token)
    applier.apply_batch(b.batch_id)
    assert r.hget(applier.keys.submission(b.submission_id), "state") == b"rejected"
    with db.cursor() as cur:
        cur.execute("SELECT current_score FROM users WHERE id = %s", (uid,))
        assert cur.fetchone()[0] == 5


def test_a_failing_submission_fails_the_batch_then_alone(applier, settings, db, r):
    ok_user, huge_user = make_user(db), make_user(db, score=2**63 - 3)
    good = submit(applier, settings, ok_user, 5)
    bad = submit(applier, settings, huge_user, 10)  # would overflow bigint
    assert good.batch_id == bad.batch_id
    with pytest.raises(BatchFailed) as failed:
        applier.apply_batch(good.batch_id)
    assert set(failed.value.submission_ids) == {good.submission_id, bad.submission_id}
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM score_history")
        assert cur.fetchone()[0] == 0  # nothing half-applied
    subs = applier.submissions.seal(good.batch_id)
    applier.apply_submissions([subs[0]], "single-good")
    with pytest.raises(Exception):
        applier.apply_submissions([subs[1]], "single-bad")
    with db.cursor() as cur:
        cur.execute("SELECT id, current_score FROM users ORDER BY id")
        assert cur.fetchall() == [(ok_user, 5), (huge_user, 2**63 - 3)]


def test_ranking_rebuilt_after_redis_lost_it(applier, settings, db, r):
    uids = [make_user(db) for _ in range(3)]
    for i, uid in enumerate(uids):
        applier.apply_batch(submit(applier, settings, uid, 10 * (i + 1)).batch_id)
    for key in r.scan_iter(match=applier.keys.prefix + "rank*"):
        r.delete(key)
    applier.apply_batch(submit(applier, settings, uids[0], 1).batch_id)
    invariants.check(db, r, applier.keys.prefix)


def test_sealing_reads_the_batch_in_order_and_skips_what_is_gone(applier, settings, db, r):
    uid = make_user(db)
    accepted = [submit(applier, settings, uid, delta) for delta in (3, 4, 5)]
    batch = accepted[0].batch_id
    assert r.get(applier.keys.batch_open) == batch.encode()
    r.delete(applier.keys.submission(accepted[1].submission_id))  # its record expired meanwhile
    subs = applier.submissions.seal(batch)
    assert [(s.id, s.score_delta, s.state) for s in subs] == [
        (accepted[0].submission_id, 3, "queued"), (accepted[2].submission_id, 5, "queued")]
    assert r.get(applier.keys.batch_open) is None  # sealed: the next submission opens a new batch
    assert submit(applier, settings, uid, 6).batch_id != batch


def test_a_batch_of_plain_ids_and_hashes_without_request_ids_is_applied(applier, settings, db, r):
    """The batch list holds ids; the hashes may lack the optional request_id."""
    uid = make_user(db)
    keys, now = applier.keys, action_tokens.now_ms()
    ids = []
    for i, delta in enumerate((2, 9)):
        sid = f"old{i}{secrets.token_hex(4)}"
        r.hset(keys.submission(sid), mapping={
            "batch": "legacy", "user_id": uid, "token": secrets.token_urlsafe(24), "action_type": "tap",
            "delta": delta, "completed_at": now, "issued_at": now - 1000, "accepted_at": now, "state": "queued"})
        r.rpush(keys.batch("legacy"), sid)
        ids.append(sid)
    r.zadd(keys.batches, {"legacy": now})
    r.set(keys.pending_count, 2)
    applier.apply_batch("legacy")
    assert [r.hget(keys.submission(sid), "state") for sid in ids] == [b"applied", b"applied"]
    assert not r.exists(keys.batch("legacy")) and r.zscore(keys.batches, "legacy") is None
    with db.cursor() as cur:
        cur.execute("SELECT current_score FROM users WHERE id = %s", (uid,))
        assert cur.fetchone()[0] == 11
    invariants.check(db, r, keys.prefix)


def test_each_result_carries_its_competition_rank(applier, settings, db, r):
    """Rank = 1 + other users ranked strictly higher, for every result of a batch: a user's
    earlier result in the batch, a tie, and a user whose Redis entry is newer than the batch."""
    uids = [make_user(db) for _ in range(5)]
    for uid, delta in zip(uids, (10, 20, 20, 40, 5)):
        applier.apply_batch(submit(applier, settings, uid, delta).batch_id)
    ranks.hold_newer(r, applier.keys, uids[4], 10**15)  # Redis holds a newer entry: the batch's is skipped
    batch = [submit(applier, settings, uid, delta) for uid, delta in
             ((uids[0], 15), (uids[0], 20), (uids[1], 5), (uids[4], 100))]
    assert len({a.batch_id for a in batch}) == 1
    applier.apply_batch(batch[0].batch_id)
    ranked = ranks.ranked(r, applier.keys)
    results = [orjson.loads(r.hget(applier.keys.submission(a.submission_id), "result")) for a in batch]
    for result in results:
        assert result["rank"] == 1 + sum(1 for uid, s in ranked.items() if uid != result["user_id"] and s > result["score"])
    assert [(x["score"], x["rank"]) for x in results] == [(25, 2), (45, 1), (25, 3), (105, 1)]
    assert ranked[uids[4]] == 5
