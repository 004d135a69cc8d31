"""The board cache (seed flow 5) against real PostgreSQL and Redis, without HTTP: hit, miss,
stampede, the PostgreSQL fallback while Redis has no ranking, TTL expiry, the write path."""

import secrets
import threading
import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event

from scoreboard import action_tokens, ranking
from scoreboard.apply import Applier
from scoreboard.db import make_engine
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from scoreboard.submissions import Submissions
from tests.conftest import reset_state

TTL = 5


class Board:
    """The read path of one private key prefix."""

    def __init__(self, engine, r, prefix):
        self.engine, self.r = engine, r
        self.keys = Keys(prefix)
        self.scripts = Scripts(r)

    def read(self, limit=10, ttl=TTL) -> dict:
        return orjson.loads(ranking.read_board(self.engine, self.r, self.scripts, self.keys, limit, ttl))

    def rebuild(self):
        assert ranking.rebuild(self.engine, self.r, self.scripts, self.keys)

    def flush(self):
        """What Redis looks like after a restart without persistence: nothing of ours."""
        names = list(self.r.scan_iter(match=f"{self.keys.prefix}*"))
        if names:
            self.r.delete(*names)

    def drop_cache(self):
        self.r.delete(self.keys.board_top("all-time", "all"), self.keys.board_top10("all-time", "all"))


@pytest.fixture
def board(database_url, r, settings):
    prefix = f"{settings.redis_prefix}cache{secrets.token_hex(2)}:"
    reset_state(database_url, r, prefix)
    engine = make_engine(settings)
    yield Board(engine, r, prefix)
    reset_state(database_url, r, prefix)
    engine.dispose()


def add_users(db, scores):
    """Users with these scores, reached in this order; returns their ids."""
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    ids = []
    with db.cursor() as cur:
        for i, score in enumerate(scores):
            cur.execute("INSERT INTO users (username, password_hash, current_score, score_reached_at,"
                        " last_history_id) VALUES (%s, 'x', %s, %s, 0) RETURNING id",
                        (f"u{i}_{secrets.token_hex(3)}", score, start + timedelta(seconds=i)))
            ids.append(cur.fetchone()[0])
    return ids


def reads(source):
    return REGISTRY.get_sample_value("scoreboard_board_reads_total", {"source": source}) or 0


def entries(body):
    return [(e["user_id"], e["rank"], e["score"]) for e in body["entries"]]


def test_hit_answers_from_the_cache(board, db):
    add_users(db, [5, 3])
    board.rebuild()
    first = board.read()
    hits = reads("cache")
    second = board.read()
    assert second == first
    assert reads("cache") == hits + 1
    # a cache hit does not look at the ranking: change the ranking behind the cache's back
    board.r.delete(board.keys.board_ranking("all-time", "all"))
    assert board.read() == first


def test_miss_refills_from_the_ranking_with_the_short_ttl(board, db):
    ids = add_users(db, [5, 9, 5])
    board.rebuild()
    board.drop_cache()
    before = reads("ranking")
    body = board.read()
    assert reads("ranking") == before + 1
    assert entries(body) == [(ids[1], 1, 9), (ids[0], 2, 5), (ids[2], 2, 5)]
    for key in (board.keys.board_top("all-time", "all"), board.keys.board_top10("all-time", "all")):
        assert 0 < board.r.ttl(key) <= TTL
    assert orjson.loads(board.r.get(board.keys.board_top10("all-time", "all"))) == body
    assert [e["score"] for e in board.read(limit=2)["entries"]] == [9, 5]


def test_concurrent_misses_fill_the_cache_once(board, db):
    add_users(db, range(1, 30))
    board.rebuild()
    board.drop_cache()
    before = {s: reads(s) for s in ("ranking", "cache")}
    barrier = threading.Barrier(16)
    bodies = []

    def reader():
        barrier.wait()
        bodies.append(board.read())

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(bodies) == 16 and all(b == bodies[0] for b in bodies)
    assert reads("ranking") - before["ranking"] == 1
    assert reads("cache") - before["cache"] == 15


def test_ttl_expiry_refills_the_cache(board, db):
    add_users(db, [4])
    board.rebuild()
    board.drop_cache()
    first = board.read(ttl=1)
    assert board.r.ttl(board.keys.board_top10("all-time", "all")) == 1
    deadline = time.monotonic() + 5
    while board.r.exists(board.keys.board_top10("all-time", "all")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not board.r.exists(board.keys.board_top10("all-time", "all")), "the cached board outlived its TTL"
    before = reads("ranking")
    second = board.read(ttl=1)
    assert reads("ranking") == before + 1
    assert second["entries"] == first["entries"] and second["generated_at"] > first["generated_at"]


def test_fallback_reads_postgresql_while_redis_is_empty(board, db):
    ids = add_users(db, [7, 2, 7, 11])
    board.rebuild()
    before_flush = board.read()
    board.flush()
    before = reads("database")
    body = board.read()
    assert reads("database") == before + 1
    assert entries(body) == entries(before_flush) == [(ids[3], 1, 11), (ids[0], 2, 7), (ids[2], 2, 7),
                                                      (ids[1], 4, 2)]
    assert body["version"] > before_flush["version"]
    # the fallback filled the cache with the short TTL: the next read is a hit
    assert 0 < board.r.ttl(board.keys.board_top10("all-time", "all")) <= TTL
    hits = reads("cache")
    assert board.read() == body and reads("cache") == hits + 1
    assert [e["score"] for e in board.read(limit=3)["entries"]] == [11, 7, 7]
    # once the ranking is rebuilt, the board is the same, with the same version
    board.rebuild()
    board.drop_cache()
    rebuilt = board.read()
    assert entries(rebuilt) == entries(body) and rebuilt["version"] == body["version"]


def test_fallback_is_single_flight(board, db):
    add_users(db, [3, 1, 2])
    board.flush()
    queries = []

    def slow_board_query(conn, cursor, statement, params, context, executemany):
        if "ORDER BY current_score DESC" in statement:
            queries.append(statement)
            time.sleep(0.3)  # a slow primary: every reader arrives while the first one reads

    event.listen(board.engine, "before_cursor_execute", slow_board_query)
    before = {s: reads(s) for s in ("database", "cache_after_wait", "database_uncached")}
    barrier = threading.Barrier(12)
    bodies = []

    def reader():
        barrier.wait()
        bodies.append(board.read())

    threads = [threading.Thread(target=reader) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    event.remove(board.engine, "before_cursor_execute", slow_board_query)
    assert len(queries) == 1
    assert len(bodies) == 12 and all(b == bodies[0] for b in bodies)
    assert [e["score"] for e in bodies[0]["entries"]] == [3, 2, 1]
    assert reads("database") - before["database"] == 1
    assert reads("cache_after_wait") - before["cache_after_wait"] == 11
    assert reads("database_uncached") == before["database_uncached"]
    assert not board.r.exists(board.keys.board_fill_lock("all-time", "all"))


def test_fallback_waiters_do_not_wait_forever(board, db, monkeypatch):
    add_users(db, [6])
    board.flush()
    board.r.set(board.keys.board_fill_lock("all-time", "all"), "a reader that died", px=10_000)
    monkeypatch.setattr(ranking, "FILL_WAIT_S", 0.2)
    before = reads("database_uncached")
    body = board.read()
    assert [e["score"] for e in body["entries"]] == [6]
    assert reads("database_uncached") == before + 1
    assert not board.r.exists(board.keys.board_top10("all-time", "all")), "only the lock holder fills the cache"


def test_write_path_caches_the_new_top_10_then_publishes(board, db, settings):
    [uid] = add_users(db, [0])
    board.rebuild()
    applier = Applier(board.engine, board.r, board.scripts, board.keys, settings.actions.by_name,
                      settings.batching.result_ttl, TTL)
    record = action_tokens.issue(board.r, board.keys, settings, uid, settings.actions.by_name["tap"])
    accepted = Submissions(board.r, board.scripts, board.keys).accept(record, 8, action_tokens.now_ms(), 50)
    pubsub = board.r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(board.keys.events_channel)
    pubsub.get_message(timeout=0.2)
    try:
        result = applier.apply_batch(accepted.batch_id)
        message = pubsub.get_message(timeout=2)
    finally:
        pubsub.close()
    cached = orjson.loads(board.r.get(board.keys.board_top10("all-time", "all")))
    assert cached["version"] == result["version"]
    assert entries(cached) == [(uid, 1, 8)]
    assert 0 < board.r.ttl(board.keys.board_top10("all-time", "all")) <= TTL
    published = orjson.loads(message["data"])
    assert published["version"] == result["version"] and published["boards"]["all-time"] == cached
    hits = reads("cache")
    assert board.read() == cached and reads("cache") == hits + 1
