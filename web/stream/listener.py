"""The one Redis subscription of a stream process, and catching up with Redis.

One greenlet listens to ``Keys.events_channel`` and hands each message to the fan-out.
After every (re)subscription, and whenever Redis is found ahead of the messages received,
``sync`` reads the board, the version and the replay window from Redis.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import gevent
import orjson
import redis
from gevent.event import Event
from gevent.lock import BoundedSemaphore

from scoreboard import ranking
from scoreboard.boards import ALL_TIME_ID, DEFAULT_BOARDS, Board
from scoreboard.periods import Calendar
from scoreboard.events import ReplayWindow, load_window, parse_message, sse
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from web.stream.fanout import FanOut
from web.stream.registry import Viewers

log = logging.getLogger(__name__)


def board_version(body: bytes) -> int:
    """The ``version`` of a board body."""
    return int(orjson.loads(body)["version"])


class Listener:
    """The subscription and what it has brought: the version seen and the replay window.

    Args:
        client: the Redis client; the subscription takes one connection of its pool.
        keys: the key names.
        scripts: the registered Lua scripts of ``client``.
        fanout: where messages go.
        viewers: the process's viewers (told to reconnect when events were lost).
        replay_window: how many personal events are kept for replay.
        board_ttl: seconds a board cache filled here lives.
        stats: the process's counters.
    """

    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts, fanout: FanOut, viewers: Viewers,
                 replay_window: int, board_ttl: int, stats: dict[str, int], boards: tuple[Board, ...] = DEFAULT_BOARDS):
        self.redis = client
        self.boards = boards
        self.keys = keys
        self.scripts = scripts
        self.fanout = fanout
        self.viewers = viewers
        self.board_ttl = board_ttl
        self.stats = stats
        self.window = ReplayWindow(replay_window)
        self.version = 0
        self.ready = Event()  # subscribed and in sync with Redis
        self._synced_once = False
        self._sync_lock = BoundedSemaphore()

    def run(self) -> None:
        """Subscribe and listen, for ever; resubscribe (and catch up) after a lost connection."""
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub()
            try:
                pubsub.subscribe(self.keys.events_channel)
                confirmed = pubsub.get_message(timeout=5)
                if not confirmed or confirmed["type"] != "subscribe":
                    raise redis.ConnectionError("no subscription confirmation")
                self.sync()
                self.ready.set()
                backoff = 0.1
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self.on_message(message["data"])
                        gevent.sleep(0)  # let the viewers write before the next message
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("event subscription lost", extra={"error": repr(exc), "retry_in": backoff})
            except Exception:
                log.exception("event listener failed")
            finally:
                self.ready.clear()
                try:
                    pubsub.close()
                except Exception:
                    pass
            gevent.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def sync(self) -> None:
        """Catch up with Redis: board, then version, then events (after a (re)subscription,
        or when Redis is ahead of what the subscription brought).

        In that order, every personal event older than the board is in the window, and
        handed to its viewers, before the board is shown to anyone.
        """
        with self._sync_lock:
            bodies = {board.id: self.cached_board(board.id) for board in self.boards}
            version = int(self.redis.get(self.keys.board_version) or 0)
            added, gap = load_window(self.redis, self.keys, self.window)
            if self._synced_once:
                self.fanout.deliver(added)
                if gap:  # some were trimmed before we read them: reconnecting tells each viewer
                    for viewer in self.viewers.snapshot():
                        viewer.finish(sse("reconnect", b'{"reason":"resync"}'))
            self._synced_once = True
            self.version = max(self.version, version)
            for board, body in bodies.items():
                if body is not None:
                    self.fanout.set_board(board_version(body), body, board)
        log.info("event stream in sync", extra={"version": self.version, "window": len(self.window)})

    def cached_board(self, board: str = ALL_TIME_ID) -> bytes | None:
        """The cached top 10 of the board's current period (filled from its Redis ranking if
        needed); a body with no period between seasons; None while the ranking is rebuilt."""
        board_ = next((b for b in self.boards if b.id == board), None)
        if board_ is None:
            return None
        period = Calendar.from_redis(self.redis, self.keys, (board_,)).period_at(board_, datetime.now(timezone.utc))
        if period is None:
            version = int(self.redis.get(self.keys.board_version) or 0)
            return orjson.dumps({"board": board, "period": None, "entries": [], "version": version,
                                 "generated_at": time.time_ns() // 1_000_000})
        body = self.redis.get(self.keys.board_top10(board, period.key))
        if body is not None:
            return body
        reply = ranking.refresh(self.scripts, self.keys, board, period.key, self.board_ttl)
        return reply[1] if reply[0] == b"ok" else None

    def on_message(self, raw: bytes) -> None:
        try:
            message = parse_message(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable event message", extra={"error": repr(exc)})
            return
        self.stats["messages"] += 1
        if message.logout is not None:
            self.fanout.logout(message)
            return
        self.fanout.deliver([e for e in message.personal if self.window.append(e)])
        self.version = max(self.version, message.version)
        for board, data in message.closed:  # ahead of the new period's board
            self.fanout.period_closed(message.version, board, data)
        for board, body in message.boards.items():
            self.fanout.set_board(message.version, body, board)

    def check_version(self) -> None:
        """If Redis is ahead of the messages received, catch up from it (every heartbeat)."""
        if not self.ready.is_set():
            return
        try:
            if int(self.redis.get(self.keys.board_version) or 0) > self.version:
                gevent.sleep(0.2)  # the message may be on its way
                if int(self.redis.get(self.keys.board_version) or 0) > self.version:
                    log.warning("event messages missed; catching up from Redis", extra={"version": self.version})
                    self.sync()
        except redis.RedisError as exc:
            log.warning("could not check the board version", extra={"error": repr(exc)})
