"""Admin decisions in the domain, against real PostgreSQL and Redis: races with batches,
idempotence, and the Redis ranking following PostgreSQL."""

import json

import pytest

from scoreboard.apply import apply_in_transaction, publish
from scoreboard.errors import Refused
from scoreboard.moderation import Moderator
from tests import ranks
from tests import invariants
from tests.domain import make_user, new_applier, submit


@pytest.fixture
def applier(database_url, r, settings):
    applier = new_applier(database_url, r, settings, "moderation")
    yield applier
    applier.engine.dispose()


@pytest.fixture
def moderator(applier):
    return Moderator(applier.engine, applier.redis, applier.scripts, applier.keys, 60, 5)


def ranked(r, keys):
    return set(ranks.ranked(r, keys))


def history(db, uid):
    with db.cursor() as cur:
        cur.execute("SELECT score_change, new_score, reason, action_id FROM score_history WHERE user_id = %s"
                    " ORDER BY id", (uid,))
        return cur.fetchall()


def test_ban_and_unban_write_history_and_move_the_ranking(applier, moderator, settings, db, r):
    admin, uid = make_user(db), make_user(db)
    applier.apply_batch(submit(applier, settings, uid, 7).batch_id)
    assert uid in ranked(r, applier.keys)
    moderator.ban(uid, admin)
    moderator.ban(uid, admin)  # idempotent: no second history row
    assert uid not in ranked(r, applier.keys)
    assert r.sismember(applier.keys.banned, uid)
    assert b'"user_id":%d' % uid not in r.get(applier.keys.board_top10("all-time", "all"))
    moderator.unban(uid, admin)
    assert uid in ranked(r, applier.keys) and not r.sismember(applier.keys.banned, uid)
    assert history(db, uid) == [(7, 7, "submission", history(db, uid)[0][3]), (0, 7, "ban", None),
                                (0, 7, "unban", None)]
    invariants.check(db, r, applier.keys.prefix)


def test_a_submission_accepted_before_the_ban_is_rejected_by_the_worker(applier, moderator, settings, db, r):
    admin, uid = make_user(db), make_user(db)
    accepted = submit(applier, settings, uid, 5)
    moderator.ban(uid, admin)
    applier.apply_batch(accepted.batch_id)
    assert r.hget(applier.keys.submission(accepted.submission_id), "state") == b"rejected"
    assert json.loads(r.hget(applier.keys.submission(accepted.submission_id), "error"))["code"] == "user_banned"
    assert uid not in ranked(r, applier.keys)
    invariants.check(db, r, applier.keys.prefix)


def test_a_batch_committed_before_the_ban_cannot_bring_the_user_back(applier, moderator, settings, db, r):
    admin, uid = make_user(db), make_user(db)
    applier.apply_batch(submit(applier, settings, uid, 1).batch_id)  # the ranking is ready
    accepted = submit(applier, settings, uid, 5)
    subs = applier.submissions.seal(accepted.batch_id)
    with applier.engine.begin() as conn:  # the batch commits ...
        result = apply_in_transaction(conn, subs, applier.action_types)
    moderator.ban(uid, admin)  # ... the ban follows ...
    publish(applier.submissions, result, accepted.batch_id, 60, 5)  # ... then the batch publishes
    assert uid not in ranked(r, applier.keys)
    invariants.check(db, r, applier.keys.prefix)


def test_revert_takes_the_points_back_once(applier, moderator, settings, db, r):
    admin, uid = make_user(db), make_user(db)
    applier.apply_batch(submit(applier, settings, uid, 3).batch_id)
    applier.apply_batch(submit(applier, settings, uid, 8, "coin_pickup", elapsed_ms=1).batch_id)
    with db.cursor() as cur:
        cur.execute("SELECT id FROM score_flags WHERE user_id = %s", (uid,))
        [(flag_id,)] = cur.fetchall()
    decision = moderator.resolve(flag_id, "revert", admin)
    assert (decision.state, decision.score) == ("reverted", 3)
    with pytest.raises(Refused) as again:
        moderator.resolve(flag_id, "revert", admin)
    assert again.value.code == "flag_resolved"
    assert [h[:3] for h in history(db, uid)] == [(3, 3, "submission"), (8, 11, "submission"), (-8, 3, "revert")]
    with db.cursor() as cur:
        cur.execute("SELECT state, resolved_by, resolved_at IS NOT NULL FROM score_flags WHERE id = %s", (flag_id,))
        assert cur.fetchone() == ("reverted", admin, True)
    assert ranks.ranked(r, applier.keys)[uid] == 3
    invariants.check(db, r, applier.keys.prefix)


def test_revert_of_a_banned_users_flag_keeps_them_off_the_board(applier, moderator, settings, db, r):
    admin, uid = make_user(db), make_user(db)
    applier.apply_batch(submit(applier, settings, uid, 8, "coin_pickup", elapsed_ms=1).batch_id)
    moderator.ban(uid, admin)
    with db.cursor() as cur:
        cur.execute("SELECT id FROM score_flags WHERE user_id = %s", (uid,))
        [(flag_id,)] = cur.fetchall()
    moderator.resolve(flag_id, "revert", admin)
    assert uid not in ranked(r, applier.keys)
    invariants.check(db, r, applier.keys.prefix)


def test_refusals(applier, moderator, settings, db):
    admin = make_user(db)
    for call, code in ((lambda: moderator.ban(admin, admin), "cannot_ban_self"),
                       (lambda: moderator.ban(10**12, admin), "not_found"),
                       (lambda: moderator.unban(10**12, admin), "not_found"),
                       (lambda: moderator.resolve(10**12, "approve", admin), "not_found")):
        with pytest.raises(Refused) as refused:
            call()
        assert refused.value.code == code


def test_ban_list_is_restored_with_the_ranking(applier, moderator, settings, db, r):
    admin, uid = make_user(db), make_user(db)
    applier.apply_batch(submit(applier, settings, uid, 2).batch_id)
    moderator.ban(uid, admin)
    for key in r.scan_iter(match=applier.keys.prefix + "*"):
        r.delete(key)  # Redis restarted empty
    from scoreboard import ranking
    assert ranking.rebuild(applier.engine, r, applier.scripts, applier.keys)
    assert r.sismember(applier.keys.banned, uid) and uid not in ranked(r, applier.keys)


def test_reconcile_brings_the_banned_set_back_to_postgresql(applier, moderator, settings, db, r):
    from scoreboard.reconcile import reconcile

    admin, cheat, honest = make_user(db), make_user(db), make_user(db)
    applier.apply_batch(submit(applier, settings, honest, 2).batch_id)  # the ranking is ready
    moderator.ban(cheat, admin)
    r.srem(applier.keys.banned, cheat)  # the ban's Redis step was lost
    r.sadd(applier.keys.banned, honest)  # and someone is refused who should not be
    reconcile(applier.engine, r, applier.scripts, applier.keys, 5, grace=0)
    assert r.smembers(applier.keys.banned) == {str(cheat).encode()}
