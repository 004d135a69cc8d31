"""The open streams of one stream process, by user and by login session (anonymous viewers
in neither index).

Adding and removing viewers, cutting one off, noticing a client that closed its
connection, and forgetting a closed stream's entry in Redis (the caps per user and per
anonymous client address count the entries there) all happen here; what is sent to viewers is ``fanout``'s and ``ticker``'s.
"""

from __future__ import annotations

import logging
import socket
from collections import defaultdict
from typing import Iterator

import gevent
import redis

from scoreboard import metrics
from scoreboard.redis_client import Keys
from web.stream.viewer import Viewer

log = logging.getLogger(__name__)


class Viewers:
    """The viewers of one process, in the order they connected.

    Args:
        client: the Redis client where the open-stream entries live.
        keys: the key names.
        beats: ticks in a heartbeat; each viewer takes one of them in turn.
        stats: the process's counters (``/readyz``).
    """

    def __init__(self, client: redis.Redis, keys: Keys, beats: int, stats: dict[str, int]):
        self.redis = client
        self.keys = keys
        self.stats = stats
        # in the order they connected (a dict, not a set): a broadcast walks the viewers and
        # their sockets in the order they were allocated, as a plain loop over a list would
        self._all: dict[Viewer, None] = {}
        # the indexes keep the order of connection too (dicts used as ordered sets)
        self._by_user: dict[int, dict[Viewer, None]] = defaultdict(dict)
        self._by_session: dict[str, dict[Viewer, None]] = defaultdict(dict)
        self._by_board: dict[str, dict[Viewer, None]] = defaultdict(dict)
        self._beats = beats
        self._next_beat = 0
        self._gone: list[tuple[str, str]] = []  # (open-stream key, viewer id)

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[Viewer]:
        return iter(self._all)

    def snapshot(self) -> list[Viewer]:
        """The viewers now (safe to walk while viewers end)."""
        return list(self._all)

    def of_user(self, user_id: int) -> list[Viewer]:
        return list(self._by_user.get(user_id, ()))

    def of_session(self, session: str) -> list[Viewer]:
        return list(self._by_session.get(session, ()))

    def of_board(self, board: str) -> list[Viewer]:
        return list(self._by_board.get(board, ()))

    def add(self, viewer: Viewer) -> None:
        self._next_beat += 1
        viewer.beat = self._next_beat % self._beats  # viewers take the ticks of a heartbeat in turn
        self._all[viewer] = None
        for index, key in self._indexes(viewer):
            index[key][viewer] = None
        self.stats["connected"] += 1
        metrics.stream_opened()

    def _indexes(self, viewer: Viewer):
        if viewer.anonymous:  # the board alone: no personal event, no session
            return ((self._by_board, viewer.board),)
        return ((self._by_user, viewer.user_id), (self._by_session, viewer.session), (self._by_board, viewer.board))

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
        if viewer in self._all:
            del self._all[viewer]
            metrics.stream_closed()
            for index, key in self._indexes(viewer):
                group = index.get(key)
                if group is not None:
                    group.pop(viewer, None)
                    if not group:
                        del index[key]
        if viewer.released:
            return
        viewer.released = True
        self._gone.append((viewer.streams_key, viewer.id))
        if len(self._gone) == 1:
            gevent.spawn_later(0.05, self.flush_gone)

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

    def flush_gone(self) -> None:
        """Remove the open-stream entries of the streams that ended, in one round trip."""
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
