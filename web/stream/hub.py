"""The fan-out of one stream process: one Redis subscription, one bounded queue per viewer.

One greenlet listens to ``Keys.events_channel`` and hands each message to the viewers
it concerns: the board to all (coalesced: at most once per board interval, latest wins),
personal events to the viewers of that user, a logout to the viewers of that session (or,
for a ban, of that user). Anonymous viewers get the board and pings only.
Each event is encoded once and the same bytes are shared by every viewer. A second
greenlet ticks every second: it ends expired streams, disconnects viewers whose write is
stuck, and every heartbeat pings all viewers and checks revocation and bans in Redis.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections import defaultdict

import gevent
import orjson
import redis
from gevent.event import Event
from gevent.lock import BoundedSemaphore

from scoreboard import metrics
from scoreboard.events import EventId, Message, PersonalEvent, ReplayWindow, board_event, load_window, \
    parse_message, sse
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from scoreboard.settings import Settings
from web.stream.viewer import Viewer, frame

log = logging.getLogger(__name__)

RESYNC = sse("resync", b'{"reason":"replay_gap"}')
LOGOUT_REVOKED = sse("logout", b'{"reason":"revoked"}')
LOGOUT_EXPIRED = sse("logout", b'{"reason":"expired"}')
LOGOUT_BANNED = sse("logout", b'{"reason":"banned"}')
CHECK_CHUNK = 1000


def stale_after(settings: Settings) -> int:
    """Seconds after which an open-stream entry that nobody refreshed no longer counts."""
    return int(settings.stream_heartbeat * 3) + 5


def board_version(body: bytes) -> int:
    """The ``version`` of a board body."""
    return int(orjson.loads(body)["version"])


class Hub:
    """The viewers of one process and the greenlets that feed them.

    Args:
        settings: the process settings (the ``stream_*`` values).
        client: a Redis client; the subscription takes one connection of its pool.
        keys: the key names.
        scripts: the registered Lua scripts of ``client``.
    """

    def __init__(self, settings: Settings, client: redis.Redis, keys: Keys, scripts: Scripts):
        self.settings = settings
        self.redis = client
        self.keys = keys
        self.scripts = scripts
        # in the order they connected (a dict, not a set): a broadcast walks the viewers and
        # their sockets in the order they were allocated, as a plain loop over a list would
        self.viewers: dict[Viewer, None] = {}
        self.by_user: dict[int, set[Viewer]] = defaultdict(set)
        self.by_session: dict[str, set[Viewer]] = defaultdict(set)
        self.window = ReplayWindow(settings.stream_replay_window)
        self.version = 0
        self.board: tuple[int, bytes, bytes, bytes] | None = None  # version, body, event bytes, framed
        self.ready = Event()  # subscribed and in sync with Redis
        self.draining = False
        self.stats = defaultdict(int)
        self._greenlets: list[gevent.Greenlet] = []
        self._broadcast_pending = False
        self._last_broadcast = 0.0
        self._gone: list[tuple[int, str]] = []
        self._synced_once = False
        self._sync_lock = BoundedSemaphore()
        self._tick_s = min(1.0, settings.stream_heartbeat / 2)
        self._beats = max(1, int(settings.stream_heartbeat / self._tick_s))  # ticks per heartbeat
        self._next_beat = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the listener and the ticker (once; later calls do nothing)."""
        if not self._greenlets:
            self._greenlets = [gevent.spawn(self._listen), gevent.spawn(self._tick)]

    def stop(self) -> None:
        """Stop the greenlets and end every stream at once (tests, and the end of a drain)."""
        gevent.killall(self._greenlets, block=False)
        for viewer in list(self.viewers):
            self.abort(viewer, "stopped", quiet=True)

    def drain(self, timeout: float = 5.0) -> None:
        """Tell every viewer to reconnect elsewhere and end their streams (SIGTERM).

        Each gets ``event: reconnect`` with a random ``retry:`` so that they do not all come
        back at the same moment; writes still stuck after ``timeout`` seconds are cut.
        """
        if self.draining:
            return
        self.draining = True
        retry = self.settings.stream_retry_ms
        log.info("stream draining", extra={"viewers": len(self.viewers)})
        for viewer in list(self.viewers):
            viewer.finish(sse("reconnect", b'{"reason":"shutdown"}', retry_ms=random.randint(retry // 4, retry * 2)))
        deadline = time.monotonic() + timeout
        while self.viewers and time.monotonic() < deadline:
            gevent.sleep(0.1)
        if self.viewers:
            log.warning("streams cut at the end of the drain", extra={"viewers": len(self.viewers)})
        for viewer in list(self.viewers):
            self.abort(viewer, "drain timeout", quiet=True)
        self._flush_gone()

    # ------------------------------------------------------------------ viewers

    def add(self, viewer: Viewer) -> None:
        self._next_beat += 1
        viewer.beat = self._next_beat % self._beats  # viewers take the ticks of a heartbeat in turn
        self.viewers[viewer] = None
        if not viewer.anonymous:
            self.by_user[viewer.user_id].add(viewer)
            self.by_session[viewer.session].add(viewer)
        self.stats["connected"] += 1
        metrics.stream_opened()

    def watch_peer(self, viewer: Viewer) -> None:
        """End the stream as soon as the client closes its connection, not at the next write
        (a page reloaded five times must not hold five streams until the next heartbeat)."""
        sock = viewer.socket
        raw = getattr(sock, "_sock", None)
        if raw is None:
            return
        try:
            watch = gevent.get_hub().loop.io(sock.fileno(), 1)
        except (OSError, ValueError):
            return

        def readable():
            try:
                peeked = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                peeked = b""
            watch.stop()  # closed, or the client sent bytes it should not: stop looking either way
            if not peeked and not viewer.closed:
                self.abort(viewer, "peer closed", quiet=True)

        viewer.watch = watch
        watch.start(readable)

    def remove(self, viewer: Viewer) -> None:
        """Forget a viewer whose stream has ended (and its open-stream entry in Redis)."""
        viewer.closed = True
        if viewer.watch is not None:
            viewer.watch.stop()
            viewer.watch.close()
            viewer.watch = None
        if viewer in self.viewers:
            del self.viewers[viewer]
            metrics.stream_closed()
            for index, key in ((self.by_user, viewer.user_id), (self.by_session, viewer.session)):
                group = index.get(key)
                if group is not None:
                    group.discard(viewer)
                    if not group:
                        del index[key]
        if viewer.released:
            return
        viewer.released = True
        self._gone.append((viewer.streams_key, viewer.id))
        if len(self._gone) == 1:
            gevent.spawn_later(0.05, self._flush_gone)

    def abort(self, viewer: Viewer, reason: str, quiet: bool = False) -> None:
        """Cut a viewer off now: drop its queue and close its connection."""
        self.stats["aborted:" + reason] += 1
        if not quiet:
            log.info("viewer disconnected", extra={"reason": reason, "user_id": viewer.user_id})
        viewer.abort()
        sock = viewer.socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        elif viewer.greenlet is not None and viewer.writing_since:
            viewer.greenlet.kill(block=False)
        if viewer.greenlet is None:  # never started: nobody else will remove it
            self.remove(viewer)

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

    def _flush_gone(self) -> None:
        gone, self._gone = self._gone, []
        if not gone:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for key, viewer_id in gone:
                pipe.zrem(key, viewer_id)
            pipe.execute()
        except redis.RedisError as exc:  # the entries go stale by themselves
            log.warning("could not forget closed streams", extra={"error": repr(exc)})

    # ------------------------------------------------------------------ listener

    def _listen(self) -> None:
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
                        self._on_message(message["data"])
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
            body = self.cached_board()
            version = int(self.redis.get(self.keys.board_version) or 0)
            added, gap = load_window(self.redis, self.keys, self.window)
            if self._synced_once:
                self._deliver(added)
                if gap:  # some were trimmed before we read them: reconnecting tells each viewer
                    for viewer in list(self.viewers):
                        viewer.finish(sse("reconnect", b'{"reason":"resync"}'))
            self._synced_once = True
            self.version = max(self.version, version)
            if body is not None:
                self._set_board(board_version(body), body)
        log.info("event stream in sync", extra={"version": self.version, "window": len(self.window)})

    def cached_board(self) -> bytes | None:
        """The cached top 10 (filled from the Redis ranking if needed); None while rebuilding."""
        body = self.redis.get(self.keys.board_top10)
        if body is not None:
            return body
        k = self.keys
        reply = self.scripts.refresh(
            keys=[k.ranking, k.usernames, k.ranking_ready, k.board_version, k.board_top, k.board_top10],
            args=[self.settings.board_cache_ttl, ""],
        )
        return reply[1] if reply[0] == b"ok" else None

    def _on_message(self, raw: bytes) -> None:
        try:
            message = parse_message(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable event message", extra={"error": repr(exc)})
            return
        self.stats["messages"] += 1
        if message.logout is not None:
            self._logout(message)
            return
        self._deliver([e for e in message.personal if self.window.append(e)])
        self.version = max(self.version, message.version)
        if message.board is not None:
            self._set_board(message.version, message.board)

    def _deliver(self, events: list[PersonalEvent]) -> None:
        for event in events:
            viewers = list(self.by_user.get(event.user_id, ()))
            for viewer in viewers:
                if not viewer.offer_personal(event):
                    self.abort(viewer, "queue full")
            if viewers:
                metrics.event_sent(event.event, len(viewers))

    def _logout(self, message: Message) -> None:
        logout = message.logout
        if logout.get("user_id") is not None:  # banned: every stream of the user
            for viewer in list(self.by_user.get(int(logout["user_id"]), ())):
                viewer.finish(LOGOUT_BANNED)
            return
        sid, jti = logout.get("sid"), logout.get("jti")
        for viewer in list(self.by_session.get(sid if sid else f"jti:{jti}", ())):
            viewer.finish(LOGOUT_REVOKED)

    # ------------------------------------------------------------------ board

    def _set_board(self, version: int, body: bytes) -> None:
        if self.board is not None and version <= self.board[0]:
            return
        event = board_event(version, body)
        self.board = (version, body, event, frame(event))
        if self._broadcast_pending:
            return
        delay = self._last_broadcast + self.settings.stream_board_interval_ms / 1000 - time.monotonic()
        if delay <= 0:
            self._broadcast()
        else:
            self._broadcast_pending = True
            gevent.spawn_later(delay, self._broadcast)

    def _broadcast(self) -> None:
        self._broadcast_pending = False
        self._last_broadcast = time.monotonic()
        version, _, payload, framed = self.board
        self.stats["boards"] += 1
        for viewer in list(self.viewers):  # a failed direct send may end a viewer
            viewer.offer_board(version, payload, framed)
        metrics.event_sent("scoreboard", len(self.viewers))

    # ------------------------------------------------------------------ ticker

    def _tick(self) -> None:
        """Every tick: end expired streams and cut stuck writes. Each viewer's heartbeat (a
        ping, and its revocation check) falls on one tick in ``heartbeat / tick``, by its
        ``beat``: a heartbeat never writes to every viewer at once, so it never holds a
        board change back by a whole fan-out. Ticks keep to a fixed schedule (the time a
        tick takes is not added to the next; after a stall, at most one tick is caught up),
        so each viewer's ping comes every heartbeat."""
        heartbeat = self.settings.stream_heartbeat
        next_check = time.monotonic() + heartbeat
        tick, next_tick = 0, time.monotonic()
        while True:
            next_tick = max(next_tick + self._tick_s, time.monotonic() - self._tick_s)
            gevent.sleep(max(0.0, next_tick - time.monotonic()))
            tick += 1
            try:
                now, wall = time.monotonic(), time.time()
                beat, due = tick % self._beats, []
                send_timeout = self.settings.stream_send_timeout
                for viewer in list(self.viewers):
                    if viewer.expires_at <= wall:
                        viewer.finish(LOGOUT_EXPIRED)
                    elif viewer.writing_since and now - viewer.writing_since > send_timeout:
                        self.abort(viewer, "send timeout")
                    elif viewer.beat == beat:
                        viewer.offer_ping()
                        due.append(viewer)
                if due:
                    metrics.event_sent("ping", len(due))
                    self._check_sessions(due)
                if now >= next_check:
                    next_check = now + heartbeat
                    self._check_version()
            except Exception:
                log.exception("stream ticker failed")

    def _check_version(self) -> None:
        """Every heartbeat: if Redis is ahead of the messages received, catch up from it."""
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

    def _check_sessions(self, viewers: list[Viewer]) -> None:
        """Every heartbeat: end revoked sessions and banned users' streams (in case their
        message was missed); keep the open-stream entries fresh."""
        k = self.keys
        stale, now = stale_after(self.settings), time.time()
        for start in range(0, len(viewers), CHECK_CHUNK):
            chunk = viewers[start:start + CHECK_CHUNK]
            try:
                pipe = self.redis.pipeline(transaction=False)
                for viewer in chunk:
                    pipe.zadd(viewer.streams_key, {viewer.id: now}, xx=True)
                    pipe.expire(viewer.streams_key, stale)
                    if not viewer.anonymous:
                        pipe.exists(k.revoked(viewer.jti), *([k.revoked("sid:" + viewer.sid)] if viewer.sid else []))
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
