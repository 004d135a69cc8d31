"""One open stream: what waits to be written to it, bounded, with the latest board only."""

from __future__ import annotations

import secrets
from collections import deque

from gevent.event import Event

from scoreboard.boards import ALL_TIME_ID
from scoreboard.events import PING, ZERO, EventId, PersonalEvent


def frame(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk (``Transfer-Encoding: chunked``)."""
    return b"%X\r\n%s\r\n" % (len(data), data)


FRAMED_PING = frame(PING)


class Viewer:
    """The queue of one viewer, filled by the hub and emptied by the viewer's greenlet.

    A viewer without a token (``user_id`` None) gets the board and pings alone.
    The board is one slot that a newer board overwrites (a viewer that falls behind gets
    the latest top 10, not a backlog); personal events wait in a deque of at most
    ``queue_max`` (``offer_personal`` returns False when it is full: disconnect).

    Once the response has started on an HTTP/1.1 connection of gunicorn, the viewer
    writes its own chunks to the socket (``chunked``), and while it is idle the hub
    sends a board or a ping straight to the socket without waking its greenlet
    (``direct``, the socket's non-blocking half); what the kernel does not take at once
    is left for the greenlet to finish.
    """

    __slots__ = ("id", "user_id", "board", "streams_key", "session", "jti", "sid", "expires_at", "queue_max",
                 "_board", "_personal", "_ping", "_final", "_pending", "closed", "sent_board", "last_personal",
                 "writing_since", "socket", "greenlet", "released", "watch", "chunked", "direct", "_idle", "_wake",
                 "beat", "__weakref__")

    def __init__(self, user_id: int | None, jti: str, sid: str | None, expires_at: float, queue_max: int,
                 streams_key: str = "", board: str = ALL_TIME_ID):
        self.id = secrets.token_hex(8)
        self.user_id = user_id  # None: an anonymous viewer (the board alone)
        self.streams_key = streams_key  # the Redis sorted set its open stream counts in
        self.board = board  # the board it watches
        self.jti = jti
        self.sid = sid
        self.session = sid if sid else "jti:" + jti
        self.expires_at = expires_at
        self.queue_max = queue_max
        self._board: tuple[int, bytes, bytes] | None = None  # version, event bytes, the same framed
        self._personal: deque[PersonalEvent] | None = None  # made at the first personal event
        self._ping = False
        self._final: bytes | None = None
        self._pending = b""  # framed bytes a direct send left unsent
        self.closed = False
        self.sent_board = 0
        self.last_personal: EventId = ZERO
        self.writing_since = 0.0  # monotonic time a write started; 0 when not writing
        self.socket = None
        self.greenlet = None
        self.released = False  # its open-stream entry is being removed from Redis
        self.watch = None  # the event-loop watcher that notices the peer closing
        self.chunked = False  # the greenlet writes framed chunks itself
        self.direct = None  # the socket's non-blocking half, for sends from the hub
        self._idle = False  # the greenlet waits for something to write
        self._wake = Event()
        self.beat = 0  # the tick of each heartbeat on which the hub pings this viewer

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    # ------------------------------------------------------------------ filled by the hub

    def offer_board(self, version: int, payload: bytes, framed: bytes | None = None) -> None:
        """Make board ``version`` the next board to write, replacing an unsent one."""
        if self.closed or version <= self.sent_board:
            return
        if framed is not None and self._quiet():
            self.sent_board = version
            self._send_now(framed)
            return
        self._board = (version, payload, framed or frame(payload))
        self._wake.set()

    def offer_personal(self, event: PersonalEvent) -> bool:
        """Queue a personal event; False when the queue is full (the viewer cannot keep up)."""
        if self.closed or event.id <= self.last_personal:
            return True
        if self._personal is None:
            self._personal = deque()
        elif len(self._personal) >= self.queue_max:
            return False
        self._personal.append(event)
        self._wake.set()
        return True

    def offer_ping(self) -> None:
        if self.closed:
            return
        if self._quiet():
            self._send_now(FRAMED_PING)
            return
        self._ping = True
        self._wake.set()

    def finish(self, payload: bytes | None = None) -> None:
        """End the stream after what is queued and then ``payload``."""
        if not self.closed:
            self.closed = True
            self._final = payload
            self._wake.set()

    def abort(self) -> None:
        """End the stream at once, dropping whatever is queued."""
        self.closed = True
        self._personal = None
        self._board = None
        self._final = None
        self._pending = b""
        self._wake.set()

    def _quiet(self) -> bool:
        """True when the greenlet waits with nothing queued: the hub may write for it."""
        return self.direct is not None and self._idle and not self._wake.is_set()

    def _send_now(self, data: bytes) -> None:
        try:
            sent = self.direct.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.abort()  # the connection is gone; the greenlet ends the response
            return
        if sent < len(data):
            self._pending = data[sent:]
            self._wake.set()

    # ------------------------------------------------------------------ emptied by the greenlet

    def take(self) -> bytes | None:
        """Wait for the next bytes to write; None once the stream has ended."""
        while True:
            chunk = self._drain()
            if chunk:
                return chunk
            if self.closed:
                return None
            self._wake.clear()
            self._idle = True
            try:
                self._wake.wait()
            finally:
                self._idle = False

    def _drain(self) -> bytes:
        chunked = self.chunked
        parts = []
        if self._pending:
            parts.append(self._pending)
            self._pending = b""
        while self._personal:  # None, or a deque
            event = self._personal.popleft()
            if event.id > self.last_personal:
                parts.append(frame(event.payload) if chunked else event.payload)
                self.last_personal = event.id
        if self._board is not None:
            version, payload, framed = self._board
            self._board = None
            if version > self.sent_board:
                parts.append(framed if chunked else payload)
                self.sent_board = version
        if self._ping and not parts:
            parts.append(FRAMED_PING if chunked else PING)
        self._ping = False
        if self._final is not None:
            parts.append(frame(self._final) if chunked else self._final)
            self._final = None
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)
