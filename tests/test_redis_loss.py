"""Redis flushed (or restarted empty) under the running service: the board stays right
(from PostgreSQL), and is whole again within one warming interval, nobody stepping in."""

import time

import requests
from rq import Queue, Worker

from scoreboard.redis_client import Keys
from tests.client import Player

WARM_INTERVAL_S = 30


def board(api):
    r = requests.get(f"{api}/api/scoreboard")
    assert r.status_code == 200, r.text
    return r.json()


def ranks(body):
    return [(e["user_id"], e["rank"], e["score"]) for e in body["entries"]]


def test_the_board_survives_redis_losing_everything(api, stack, r, settings):
    keys = Keys(settings.redis_prefix)
    a, b, c = (Player(api) for _ in range(3))
    a.earn(5)
    b.earn(9)
    c.earn(5)
    before = board(api)
    assert ranks(before) == [(b.id, 1, 9), (a.id, 2, 5), (c.id, 2, 5)]

    r.flushdb()
    lost_at = time.monotonic()
    during = board(api)  # read from PostgreSQL
    assert ranks(during) == ranks(before) and during["version"] > before["version"]
    assert not r.exists(keys.board_ready("all-time", "all"))

    while not r.exists(keys.board_ready("all-time", "all")):
        assert time.monotonic() - lost_at < WARM_INTERVAL_S + 10, "the ranking was not rebuilt in time"
        assert ranks(board(api)) == ranks(before)
        time.sleep(0.5)
    after = board(api)
    assert ranks(after) == ranks(before) and after["version"] >= during["version"]

    # the service goes on: workers are registered again, and a new score moves the board
    deadline = time.monotonic() + 30
    while Worker.count(connection=r, queue=Queue(settings.batching.queue, connection=r)) < len(stack.workers):
        assert time.monotonic() < deadline, "workers did not register again"
        time.sleep(0.5)
    c.login()
    c.earn(10)
    moved = board(api)
    assert ranks(moved)[0] == (c.id, 1, 15) and moved["version"] > after["version"]
