"""A stack of the service's real processes of its own (web, two workers, the scheduler)
whose ``fixed`` board ``round`` has a period ending a few seconds after the stack is up:
for the tests of what happens at a period's end.

Every process reads ``BOARDS`` when it starts, so the board's anchor (one of its period
boundaries) is chosen from the clock just before the stack starts. The stack runs on a
Redis database index and queues of its own, so the session's stack never takes its jobs.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import orjson
import redis as redis_lib
import requests

from scoreboard.boards import Board, Period, parse_boards, period_at
from scoreboard.redis_client import Keys
from tests import processes
from tests.conftest import LOG_DIR, reset_state

BOARD = "round"
LENGTH_S = 60


def round_boards(boundary: datetime) -> str:
    """``BOARDS`` with a ``fixed`` board of 60-second rounds, one of which starts at ``boundary``."""
    return json.dumps([{"id": "all-time", "window": "all_time"},
                       {"id": BOARD, "window": "fixed", "length_s": LENGTH_S,
                        "anchor": boundary.strftime("%Y-%m-%dT%H:%M:%SZ")}])


@dataclass
class RoundStack:
    """The processes, and the two rounds either side of the boundary."""

    env: dict
    web: processes.Process
    base: str
    workers: list[processes.Process]
    schedulers: list[processes.Process]
    board: Board
    ending: Period  # the round that ends at the boundary
    following: Period  # the round that starts there
    r: redis_lib.Redis = field(repr=False)

    @property
    def keys(self) -> Keys:
        return Keys(self.env["REDIS_PREFIX"])

    @property
    def boundary(self) -> datetime:
        return self.ending.ends_at

    def start_scheduler(self) -> processes.Process:
        proc = processes.start_scheduler(self.env, LOG_DIR)
        self.schedulers.append(proc)
        return proc

    def start_worker(self) -> processes.Process:
        proc = processes.start_worker(self.env, LOG_DIR)
        self.workers.append(proc)
        return proc

    def leading_scheduler(self, timeout: float = 20) -> processes.Process:
        """The scheduler that holds the leader lock (its owner names its PID)."""
        deadline = time.monotonic() + timeout
        while (owner := self.r.get(self.keys.scheduler_leader)) is None:
            assert time.monotonic() < deadline, "no scheduler leads"
            time.sleep(0.1)
        pid = int(owner.decode().rsplit(":", 3)[1])  # host:pid:name:token
        return next(s for s in self.schedulers if s.pid == pid)

    def wait_for_boundary(self, after_s: float = 0.05) -> None:
        """Sleep until just after the boundary (by this machine's clock, the servers' too)."""
        time.sleep(max(0.0, (self.boundary - datetime.now(timezone.utc)).total_seconds() + after_s))

    def period(self, key: str, **params) -> dict:
        """``GET /api/boards/round?period=<key>`` (200 expected)."""
        resp = requests.get(f"{self.base}/api/boards/{BOARD}", params={"period": key, **params}, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait_state(self, key: str, state: str, timeout: float = 40) -> dict:
        """Poll the period until its state is ``state``; its body."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.period(key)
            if body["period"]["state"] == state:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"period {key} still {body['period']['state']} after {timeout}s, not {state}; "
                                     f"close_periods said {self.close_report()}")
            time.sleep(0.2)

    def close_report(self) -> dict | None:
        """The last report of the ``close_periods`` job (``at``: when it ran, unix seconds)."""
        raw = self.r.hget(self.keys.maintenance_report, "close_periods")
        return None if raw is None else orjson.loads(raw)

    def stop(self) -> None:
        for proc in [self.web, *self.schedulers, *self.workers]:
            proc.stop()


def start_round_stack(base_env: dict, redis_url: str, database_url: str, lead_s: float = 12,
                      min_ahead_s: float = 4, **overrides) -> RoundStack:
    """Start web, two workers and a scheduler with a round ending ``lead_s`` seconds from now.

    When the processes took so long to start that the round ends in less than
    ``min_ahead_s``, the stack is started again with a boundary as far ahead as that start
    took (never a wait of a whole round).

    Args:
        base_env: the session's environment of the processes.
        redis_url: a Redis database index the stack has alone (flushed here).
        database_url: the session's database (emptied here).
        overrides: more environment variables of the processes.
    """
    for _ in range(3):
        r = redis_lib.Redis.from_url(redis_url)
        r.flushdb()
        prefix = f"sbround{secrets.token_hex(2)}:"
        reset_state(database_url, r, prefix)
        started = time.monotonic()
        boundary = datetime.fromtimestamp(math.ceil(time.time() + lead_s), tz=timezone.utc)
        env = {**base_env, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix, "BOARDS": round_boards(boundary),
               "QUEUE_NAME": f"scores-{secrets.token_hex(3)}",
               "MAINTENANCE_QUEUE_NAME": f"maintenance-{secrets.token_hex(3)}",
               **{k: str(v) for k, v in overrides.items()}}
        with ThreadPoolExecutor(4) as pool:  # the slow part of starting is each one's imports
            web = pool.submit(processes.start_web, env, LOG_DIR)
            workers = [pool.submit(processes.start_worker, env, LOG_DIR) for _ in range(2)]
            scheduler = pool.submit(processes.start_scheduler, env, LOG_DIR)
            (web_proc, base), workers = web.result(), [w.result() for w in workers]
        board = next(b for b in parse_boards(env["BOARDS"]) if b.id == BOARD)
        stack = RoundStack(env, web_proc, base, workers, [scheduler.result()], board,
                           period_at(board, boundary - timedelta(seconds=1)), period_at(board, boundary), r)
        if (boundary - datetime.now(timezone.utc)).total_seconds() >= min_ahead_s:
            return stack
        stack.stop()
        r.close()
        lead_s = time.monotonic() - started + min_ahead_s + 2
    raise RuntimeError("the stack never started in time for its round's end")
