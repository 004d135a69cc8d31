"""The periodic jobs: the registered list (as the README documents it), and each job, run
in this process against real PostgreSQL and a Redis index no worker listens on. Each job
is run twice: the second run must find nothing left to do."""

import dataclasses
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
import redis as redis_lib
from rq import Queue
from rq.cron import CronScheduler
from rq.job import Job

from scheduler import cron
from tests import ranks
from workers import maintenance as jobs
from scoreboard import jobspec, purge, ranking
from scoreboard.apply import Applier
from scoreboard.db import make_engine
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from tests.conftest import reset_state
from workers import context

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def applier(database_url, spare_redis_index, settings):
    r = redis_lib.Redis.from_url(spare_redis_index.url)
    r.flushdb()
    job_settings = dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, url=spare_redis_index.url),
                                       redis_prefix="sbjobs:")
    reset_state(database_url, r, job_settings.redis_prefix)
    engine = make_engine(job_settings)
    applier = Applier(engine, r, Scripts(r), Keys(job_settings.redis_prefix), job_settings.actions.by_name,
                      job_settings.batching.result_ttl, job_settings.board_cache_ttl)
    context.install(applier, job_settings)
    yield applier
    engine.dispose()
    r.flushdb()
    r.close()


def readme_jobs():
    text = README.read_text()
    section = text[text.index("The periodic jobs (`scheduler/cron.py`)"):]
    rows = []
    for line in section.splitlines()[1:]:
        match = re.match(r"^\| `(\w+)` \| (\d+) s \|", line)
        if match:
            rows.append((match.group(1), int(match.group(2))))
        elif rows and not line.startswith("|"):
            break
    return rows


def test_registered_jobs_are_the_documented_ones(r):
    documented = readme_jobs()
    assert documented == [(func.__name__, interval) for func, interval, _ in cron.JOBS]
    scheduler = CronScheduler(connection=r)
    cron.register_all(scheduler, "maintenance-of-this-test")
    registered = [(job.func_name, job.interval, job.queue_name) for job in scheduler.get_jobs()]
    assert registered == [(f"workers.maintenance.{name}", interval, "maintenance-of-this-test")
                          for name, interval in documented]
    for job, (_, _, timeout) in zip(scheduler.get_jobs(), cron.JOBS):
        assert job.job_options["job_timeout"] == timeout
        assert timeout >= 60


def add_users(db, scores, minutes_ago=60):
    start = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    ids = []
    with db.cursor() as cur:
        for i, score in enumerate(scores):
            cur.execute("INSERT INTO users (username, password_hash, current_score, score_reached_at)"
                        " VALUES (%s, 'x', %s, %s) RETURNING id",
                        (f"j{i}_{secrets.token_hex(3)}", score, start + timedelta(seconds=i)))
            ids.append(cur.fetchone()[0])
    return ids


def assert_ranking_is_postgresql(db, r, keys):
    with db.cursor() as cur:
        cur.execute("SELECT id, current_score FROM users WHERE score_reached_at IS NOT NULL AND NOT banned")
        expected = dict(cur.fetchall())
    assert ranks.ranked(r, keys) == expected
    assert r.zcard(keys.board_ranking("all-time", "all")) == len(expected)


def report(applier, job):
    return orjson.loads(applier.redis.hget(applier.keys.maintenance_report, job))


def test_recover_batches_enqueues_orphan_batches_once(applier):
    r, keys = applier.redis, applier.keys
    now_ms = time.time() * 1000
    r.zadd(keys.batches, {"lost": now_ms - 60_000, "young": now_ms - 1000,
                          "ancient": now_ms - (jobspec.APPLY_FAILURE_TTL + 60) * 1000})
    assert jobs.recover_batches() == {"orphans": 1}
    queue = Queue(context.settings().batching.queue, connection=r)
    assert Job.exists(jobspec.apply_job_id("lost"), connection=r)
    assert not Job.exists(jobspec.apply_job_id("young"), connection=r)
    assert not Job.exists(jobspec.apply_job_id("ancient"), connection=r), "left to purge_expired"
    assert queue.count == 1
    assert jobs.recover_batches() == {"orphans": 0}
    assert queue.count == 1
    assert report(applier, "recover_batches")["orphans"] == 0


def test_warm_board_rebuilds_a_lost_ranking_and_fills_the_top_100(applier, db):
    ids = add_users(db, range(1, 121))
    r, keys = applier.redis, applier.keys
    assert not r.exists(keys.board_ready("all-time", "all"))
    assert "all-time/all" in jobs.warm_board()["ready"]
    top = orjson.loads(r.get(keys.board_top("all-time", "all")))
    assert len(top["entries"]) == 100 and top["entries"][0]["user_id"] == ids[-1]
    assert orjson.loads(r.get(keys.board_top10("all-time", "all")))["entries"] == top["entries"][:10]
    assert 0 < r.ttl(keys.board_top("all-time", "all")) <= applier.board_ttl
    assert top["version"] > 0 and (top["board"], top["period"]) == ("all-time", "all")
    assert "all-time/all" in jobs.warm_board()["ready"]
    assert r.zcard(keys.board_ranking("all-time", "all")) == 120
    assert_ranking_is_postgresql(db, r, keys)


def test_reconcile_ranking_corrects_drift_and_reports_it(applier, db):
    r, keys, scripts = applier.redis, applier.keys, applier.scripts
    a, b, c, banned, recent = add_users(db, [10, 20, 30, 40, 50])
    assert ranking.rebuild(applier.engine, r, scripts, keys)
    with db.cursor() as cur:
        cur.execute("UPDATE users SET banned = true WHERE id = %s", (banned,))
        cur.execute("UPDATE users SET score_reached_at = now() WHERE id = %s", (recent,))
    zkey = keys.board_ranking("all-time", "all")
    member_b = ranks.member_of(r, keys, b)
    r.zadd(zkey, {member_b: 999})  # a wrong score
    r.zrem(zkey, ranks.member_of(r, keys, c))  # a lost entry
    r.hdel(keys.board_guard("all-time", "all", c), str(c % 128))
    r.zadd(zkey, {ranking.member(a, datetime.now(timezone.utc)): 10})  # a member nobody owns
    gone = ranking.member(987654, datetime.now(timezone.utc))  # a user that is gone from PostgreSQL
    r.zadd(zkey, {gone: 5})
    r.hset(keys.board_guard("all-time", "all", 987654), str(987654 % 128), gone + b"1")
    r.zadd(zkey, {ranks.member_of(r, keys, recent): 1})  # wrong, but changed just now
    version = int(r.get(keys.board_version) or 0)

    first = jobs.reconcile_ranking()
    # b (score), c (missing), banned (still ranked), the orphan member, the gone user
    assert first["drift"] == 5 and first["fixed"] == 4 and first["orphans_removed"] == 1
    assert first["users_checked"] == 5 and not first["rebuilt"]
    assert r.zscore(zkey, member_b) == 20
    assert r.zscore(zkey, ranks.member_of(r, keys, c)) == 30
    assert ranks.member_of(r, keys, banned) is None
    assert r.zscore(zkey, ranks.member_of(r, keys, recent)) == 1, "inside the grace period"
    assert int(r.get(keys.board_version)) > version, "the corrected board is republished"
    assert report(applier, "reconcile_ranking")["drift"] == 5

    second = jobs.reconcile_ranking()
    assert second["drift"] == 0 and second["fixed"] == 0


def test_reconcile_never_moves_an_entry_back(applier, db):
    r, keys, scripts = applier.redis, applier.keys, applier.scripts
    [uid] = add_users(db, [10])
    assert ranking.rebuild(applier.engine, r, scripts, keys)
    ranks.hold_newer(r, keys, uid, 50)  # a batch newer than what reconcile read has published
    fixed, _ = scripts.reconcile(keys=[keys.usernames], args=[keys.board_base("all-time", "all"), 1, uid, 49, 3,
                                                                ranking.member(uid, datetime.now(timezone.utc)), "x"])
    assert fixed == 0 and ranks.ranked(r, keys)[uid] == 10


def test_reconcile_rebuilds_a_lost_ranking(applier, db):
    add_users(db, [1, 2])
    assert jobs.reconcile_ranking()["rebuilt"] is True
    assert_ranking_is_postgresql(db, applier.redis, applier.keys)


def test_a_maintenance_job_never_runs_twice_at_once(applier):
    applier.redis.set(applier.keys.job_lock("reconcile_ranking"), "another run", ex=60)
    assert jobs.reconcile_ranking() == {"skipped": True}
    assert jobs.purge_expired()["tokens_expiring"] == 0


def test_purge_expired_gives_everything_an_end(applier, settings):
    r, keys = applier.redis, applier.keys
    now_ms = int(time.time() * 1000)
    hour_ago = now_ms - 2 * 3600 * 1000
    r.hset(keys.action_token("forever"), mapping={"user_id": 1, "used": 0})
    r.hset(keys.action_token("fine"), mapping={"user_id": 1, "used": 0})
    r.expire(keys.action_token("fine"), 30)
    r.hset(keys.submission("applied"), mapping={"state": "applied", "batch": "9", "accepted_at": now_ms})
    r.hset(keys.submission("failed"), mapping={"state": "failed", "batch": "9", "accepted_at": now_ms})
    r.hset(keys.submission("lost"), mapping={"state": "queued", "batch": "gone", "accepted_at": hour_ago})
    r.hset(keys.submission("young"), mapping={"state": "queued", "batch": "gone", "accepted_at": now_ms})
    r.hset(keys.submission("waiting"), mapping={"state": "queued", "batch": "live", "accepted_at": hour_ago})
    r.rpush(keys.batch("live"), "waiting")
    r.zadd(keys.batches, {"live": now_ms})
    r.lpush(keys.done("applied"), "{}")
    stale_at = now_ms - (jobspec.APPLY_FAILURE_TTL + purge.STALE_BATCH_MARGIN_S + 60) * 1000
    r.hset(keys.submission("stale"), mapping={"state": "failed", "batch": "old", "accepted_at": stale_at})
    r.rpush(keys.batch("old"), "stale")
    r.zadd(keys.batches, {"old": stale_at})
    r.set(keys.pending_count, 2)

    first = jobs.purge_expired()
    assert first == {"tokens_expiring": 1, "submissions_expiring": 2, "submissions_lost": 1,
                     "done_expiring": 1, "batches_dropped": 1}
    token_life = purge.token_lifetime(settings.actions.token_ttl, settings.actions.clock_skew)
    assert 0 < r.ttl(keys.action_token("forever")) <= token_life
    assert 0 < r.ttl(keys.submission("applied")) <= settings.batching.result_ttl
    assert settings.batching.result_ttl < r.ttl(keys.submission("failed")) <= jobspec.APPLY_FAILURE_TTL
    assert r.hget(keys.submission("lost"), "state") == b"failed"
    assert orjson.loads(r.hget(keys.submission("lost"), "error"))["code"] == "apply_failed"
    assert r.ttl(keys.submission("young")) == -1 and r.hget(keys.submission("young"), "state") == b"queued"
    assert r.ttl(keys.submission("waiting")) == -1 and r.hget(keys.submission("waiting"), "state") == b"queued"
    assert r.zrange(keys.batches, 0, -1) == [b"live"] and not r.exists(keys.batch("old"))
    assert r.hget(keys.submission("stale"), "state") == b"failed" and r.ttl(keys.submission("stale")) > 0
    assert int(r.get(keys.pending_count)) == 1
    assert 0 < r.ttl(keys.done("applied")) <= 60

    second = jobs.purge_expired()
    assert set(second.values()) == {0}
    assert report(applier, "purge_expired")["batches_dropped"] == 0
