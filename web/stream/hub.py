"""The fan-out of one stream process: one Redis subscription, one bounded queue per viewer.

The hub puts together what a stream process runs: its viewers (``registry``), what they
are sent (``fanout``), the subscription that feeds it (``listener``) and the clock that
pings, expires and checks them (``ticker``), and it is what the route and the process's
lifecycle talk to: start, drain, add a viewer, wait until in sync, replay.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict

import gevent
import redis

from scoreboard.events import EventId, PersonalEvent, sse
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from scoreboard.settings import Settings
from web.stream.fanout import FanOut
from web.stream.listener import Listener
from web.stream.registry import Viewers
from web.stream.ticker import Ticker
from web.stream.viewer import Viewer

log = logging.getLogger(__name__)

RESYNC = sse("resync", b'{"reason":"replay_gap"}')


class Hub:
    """The viewers of one process and the greenlets that feed them.

    Args:
        settings: the process settings (``settings.stream``).
        client: a Redis client; the subscription takes one connection of its pool.
        keys: the key names.
        scripts: the registered Lua scripts of ``client``.
    """

    def __init__(self, settings: Settings, client: redis.Redis, keys: Keys, scripts: Scripts):
        self.settings = settings
        self.redis = client
        self.keys = keys
        self.scripts = scripts
        self.stats: dict[str, int] = defaultdict(int)
        self.draining = False
        tick_s = min(1.0, settings.stream.heartbeat / 2)
        beats = max(1, int(settings.stream.heartbeat / tick_s))  # ticks per heartbeat
        self.viewers = Viewers(client, keys, beats, self.stats)
        self.fanout = FanOut(self.viewers, settings.stream.board_interval_ms / 1000, self.stats)
        self.listener = Listener(client, keys, scripts, self.fanout, self.viewers, settings.stream.replay_window,
                                 settings.board_cache_ttl, self.stats, settings.boards)
        self.ticker = Ticker(settings.stream, client, keys, self.viewers, self.listener, tick_s, beats)
        self._greenlets: list[gevent.Greenlet] = []

    # what the route reads
    @property
    def ready(self):
        return self.listener.ready

    @property
    def version(self) -> int:
        return self.listener.version

    @property
    def window(self):
        return self.listener.window


    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the listener and the ticker (once; later calls do nothing)."""
        if not self._greenlets:
            self._greenlets = [gevent.spawn(self.listener.run), gevent.spawn(self.ticker.run)]

    def stop(self) -> None:
        """Stop the greenlets and end every stream at once (tests, and the end of a drain)."""
        gevent.killall(self._greenlets, block=False)
        for viewer in self.viewers.snapshot():
            self.viewers.abort(viewer, "stopped", quiet=True)

    def drain(self, timeout: float = 5.0) -> None:
        """Tell every viewer to reconnect elsewhere and end their streams (SIGTERM).

        Each gets ``event: reconnect`` with a random ``retry:`` so that they do not all come
        back at the same moment; writes still stuck after ``timeout`` seconds are cut.
        """
        if self.draining:
            return
        self.draining = True
        retry = self.settings.stream.retry_ms
        log.info("stream draining", extra={"viewers": len(self.viewers)})
        for viewer in self.viewers.snapshot():
            viewer.finish(sse("reconnect", b'{"reason":"shutdown"}', retry_ms=random.randint(retry // 4, retry * 2)))
        deadline = time.monotonic() + timeout
        while len(self.viewers) and time.monotonic() < deadline:
            gevent.sleep(0.1)
        if len(self.viewers):
            log.warning("streams cut at the end of the drain", extra={"viewers": len(self.viewers)})
        for viewer in self.viewers.snapshot():
            self.viewers.abort(viewer, "drain timeout", quiet=True)
        self.viewers.flush_gone()

    # ------------------------------------------------------------------ viewers

    def add(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)

    def watch_peer(self, viewer: Viewer) -> None:
        self.viewers.watch_peer(viewer)

    def remove(self, viewer: Viewer) -> None:
        self.viewers.remove(viewer)

    def abort(self, viewer: Viewer, reason: str, quiet: bool = False) -> None:
        self.viewers.abort(viewer, reason, quiet)

    # ------------------------------------------------------------------ in sync with Redis

    def sync(self) -> None:
        self.listener.sync()

    def cached_board(self, board: str) -> bytes | None:
        return self.listener.cached_board(board)

    def wait_until(self, version: int, timeout: float) -> bool:
        """Wait until the listener is in sync and has seen ``version``; False on timeout."""
        deadline = time.monotonic() + timeout
        if not self.ready.wait(timeout):
            return False
        while self.version < version:
            if time.monotonic() >= deadline or not self.ready.is_set():
                return False
            gevent.sleep(0.005)
        return True

    def replay(self, user_id: int, after: EventId) -> list[PersonalEvent] | None:
        """Personal events of ``user_id`` after ``after``; None when some may be lost."""
        if after.version > self.version:
            return None  # an id this service never gave: Redis lost events
        return self.window.since(user_id, after)
