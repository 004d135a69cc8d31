"""The clock of a stream process: every tick it ends expired streams and cuts stuck
writes; every heartbeat it pings each viewer, checks their session's revocation and their
ban and keeps their open-stream entry fresh in Redis, and checks that no event message was
missed."""

from __future__ import annotations

import logging
import time

import gevent
import redis

from scoreboard import metrics
from scoreboard.events import sse
from scoreboard.redis_client import Keys
from scoreboard.settings import Stream
from web.stream.fanout import LOGOUT_BANNED, LOGOUT_REVOKED
from web.stream.listener import Listener
from web.stream.registry import Viewers
from web.stream.viewer import Viewer

log = logging.getLogger(__name__)

LOGOUT_EXPIRED = sse("logout", b'{"reason":"expired"}')
CHECK_CHUNK = 1000


def stale_after(stream: Stream) -> int:
    """Seconds after which an open-stream entry that nobody refreshed no longer counts."""
    return int(stream.heartbeat * 3) + 5


class Ticker:
    """The ticks of one process.

    Args:
        stream: the stream settings (heartbeat, send timeout).
        client: the Redis client; keys: the key names.
        viewers: the process's viewers.
        listener: the subscription (for the missed-message check).
        tick_s: seconds between ticks; ``beats``: ticks in a heartbeat.
    """

    def __init__(self, stream: Stream, client: redis.Redis, keys: Keys, viewers: Viewers, listener: Listener,
                 tick_s: float, beats: int):
        self.stream = stream
        self.redis = client
        self.keys = keys
        self.viewers = viewers
        self.listener = listener
        self.tick_s = tick_s
        self.beats = beats

    def run(self) -> None:
        """Every tick: end expired streams and cut stuck writes. Each viewer's heartbeat (a
        ping, and its revocation check) falls on one tick in ``heartbeat / tick``, by its
        ``beat``: a heartbeat never writes to every viewer at once, so it never holds a
        board change back by a whole fan-out. Ticks keep to a fixed schedule (the time a
        tick takes is not added to the next; after a stall, at most one tick is caught up),
        so each viewer's ping comes every heartbeat."""
        heartbeat = self.stream.heartbeat
        next_check = time.monotonic() + heartbeat
        tick, next_tick = 0, time.monotonic()
        while True:
            next_tick = max(next_tick + self.tick_s, time.monotonic() - self.tick_s)
            gevent.sleep(max(0.0, next_tick - time.monotonic()))
            tick += 1
            try:
                now, wall = time.monotonic(), time.time()
                beat, due = tick % self.beats, []
                for viewer in self.viewers.snapshot():
                    if viewer.expires_at <= wall:
                        viewer.finish(LOGOUT_EXPIRED)
                    elif viewer.writing_since and now - viewer.writing_since > self.stream.send_timeout:
                        self.viewers.abort(viewer, "send timeout")
                    elif viewer.beat == beat:
                        viewer.offer_ping()
                        due.append(viewer)
                if due:
                    metrics.event_sent("ping", len(due))
                    self.check_sessions(due)
                if now >= next_check:
                    next_check = now + heartbeat
                    self.listener.check_version()
            except Exception:
                log.exception("stream ticker failed")

    def check_sessions(self, viewers: list[Viewer]) -> None:
        """End revoked sessions and banned users' streams (in case their message was
        missed); keep the open-stream entries fresh."""
        k = self.keys
        stale, now = stale_after(self.stream), time.time()
        for start in range(0, len(viewers), CHECK_CHUNK):
            chunk = viewers[start:start + CHECK_CHUNK]
            try:
                pipe = self.redis.pipeline(transaction=False)
                for viewer in chunk:
                    pipe.zadd(viewer.streams_key, {viewer.id: now}, xx=True)
                    pipe.expire(viewer.streams_key, stale)
                    if not viewer.anonymous:
                        pipe.exists(k.revoked(viewer.jti), *([k.revoked_session(viewer.sid)] if viewer.sid else []))
                        pipe.sismember(k.banned, viewer.user_id)
                replies = iter(pipe.execute())
            except redis.RedisError as exc:  # nothing could be revoked without Redis either
                log.warning("could not check stream sessions", extra={"error": repr(exc)})
                return
            for viewer in chunk:
                next(replies), next(replies)
                if viewer.anonymous:
                    continue
                revoked, banned = next(replies), next(replies)
                if banned:
                    viewer.finish(LOGOUT_BANNED)
                elif revoked:
                    viewer.finish(LOGOUT_REVOKED)
            gevent.sleep(0)
