"""One open stream: what waits to be written to it, bounded, with the latest board only."""

from __future__ import annotations

import secrets
from collections import deque

from gevent.event import Event

from scoreboard.events import PING, ZERO, EventId, PersonalEvent


class Viewer:
    """The queue of one viewer, filled by the hub and emptied by the viewer's greenlet.

    The board is one slot that a newer board overwrites (a viewer that falls behind gets
    the latest top 10, not a backlog); personal events wait in a deque of at most
    ``queue_max`` (``offer_personal`` returns False when it is full: disconnect).
    """

    __slots__ = ("id", "user_id", "session", "jti", "sid", "expires_at", "queue_max", "_board", "_personal",
                 "_ping", "_final", "closed", "sent_board", "last_personal", "writing_since", "socket",
                 "greenlet", "released", "watch", "_wake", "__weakref__")

    def __init__(self, user_id: int, jti: str, sid: str | None, expires_at: float, queue_max: int):
        self.id = secrets.token_hex(8)
        self.user_id = user_id
        self.jti = jti
        self.sid = sid
        self.session = sid if sid else "jti:" + jti
        self.expires_at = expires_at
        self.queue_max = queue_max
        self._board: tuple[int, bytes] | None = None
        self._personal: deque[PersonalEvent] = deque()
        self._ping = False
        self._final: bytes | None = None
        self.closed = False
        self.sent_board = 0
        self.last_personal: EventId = ZERO
        self.writing_since = 0.0  # monotonic time a write started; 0 when not writing
        self.socket = None
        self.greenlet = None
        self.released = False  # its open-stream entry is being removed from Redis
        self.watch = None  # the event-loop watcher that notices the peer closing
        self._wake = Event()

    def offer_board(self, version: int, payload: bytes) -> None:
        """Make ``payload`` (board ``version``) the next board to write, replacing an unsent one."""
        if not self.closed and version > self.sent_board:
            self._board = (version, payload)
            self._wake.set()

    def offer_personal(self, event: PersonalEvent) -> bool:
        """Queue a personal event; False when the queue is full (the viewer cannot keep up)."""
        if self.closed or event.id <= self.last_personal:
            return True
        if len(self._personal) >= self.queue_max:
            return False
        self._personal.append(event)
        self._wake.set()
        return True

    def offer_ping(self) -> None:
        if not self.closed:
            self._ping = True
            self._wake.set()

    def finish(self, payload: bytes | None = None) -> None:
        """End the stream after what is queued and then ``payload``."""
        if not self.closed:
            self.closed = True
            self._final = payload
            self._wake.set()

    def take(self) -> bytes | None:
        """Wait for the next bytes to write; None once the stream has ended."""
        while True:
            chunk = self._drain()
            if chunk:
                return chunk
            if self.closed:
                return None
            self._wake.clear()
            self._wake.wait()

    def _drain(self) -> bytes:
        parts = []
        while self._personal:
            event = self._personal.popleft()
            if event.id > self.last_personal:
                parts.append(event.payload)
                self.last_personal = event.id
        if self._board is not None:
            version, payload = self._board
            self._board = None
            if version > self.sent_board:
                parts.append(payload)
                self.sent_board = version
        if self._ping and not parts:
            parts.append(PING)
        self._ping = False
        if self._final is not None:
            parts.append(self._final)
            self._final = None
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def abort(self) -> None:
        """End the stream at once, dropping whatever is queued."""
        self.closed = True
        self._personal.clear()
        self._board = None
        self._final = None
        self._wake.set()
