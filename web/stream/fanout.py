"""What the viewers of one process get: the board to all (coalesced, latest wins),
personal events to the viewers of their user (never to anonymous viewers), a logout to
the viewers of that session, or of that user when they are banned.

Each event is encoded once and the same bytes are shared by every viewer.
"""

from __future__ import annotations

import time

import gevent

from scoreboard import metrics
from scoreboard.events import Message, PersonalEvent, board_event, sse
from web.stream.registry import Viewers
from web.stream.viewer import frame

LOGOUT_REVOKED = sse("logout", b'{"reason":"revoked"}')
LOGOUT_BANNED = sse("logout", b'{"reason":"banned"}')


class FanOut:
    """The board of the process and its broadcast, and the delivery of personal events.

    Args:
        viewers: the process's viewers.
        board_interval_s: the least time between two board broadcasts.
        stats: the process's counters.
    """

    def __init__(self, viewers: Viewers, board_interval_s: float, stats: dict[str, int]):
        self.viewers = viewers
        self.board_interval_s = board_interval_s
        self.stats = stats
        self.board: tuple[int, bytes, bytes, bytes] | None = None  # version, body, event bytes, framed
        self._broadcast_pending = False
        self._last_broadcast = 0.0

    def set_board(self, version: int, body: bytes) -> None:
        """A newer board: broadcast now, or at the end of the board interval (latest wins)."""
        if self.board is not None and version <= self.board[0]:
            return
        event = board_event(version, body)
        self.board = (version, body, event, frame(event))
        if self._broadcast_pending:
            return
        delay = self._last_broadcast + self.board_interval_s - time.monotonic()
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
        for viewer in self.viewers.snapshot():  # a failed direct send may end a viewer
            viewer.offer_board(version, payload, framed)
        metrics.event_sent("scoreboard", len(self.viewers))

    def deliver(self, events: list[PersonalEvent]) -> None:
        """Each personal event to the viewers of its user (a viewer that cannot keep up is cut)."""
        for event in events:
            viewers = self.viewers.of_user(event.user_id)
            for viewer in viewers:
                if not viewer.offer_personal(event):
                    self.viewers.abort(viewer, "queue full")
            if viewers:
                metrics.event_sent(event.event, len(viewers))

    def logout(self, message: Message) -> None:
        """End the streams of the session (or the token) that logged out, or every stream
        of a user who was banned."""
        logout = message.logout
        if logout.get("user_id") is not None:
            for viewer in self.viewers.of_user(int(logout["user_id"])):
                viewer.finish(LOGOUT_BANNED)
            return
        sid, jti = logout.get("sid"), logout.get("jti")
        for viewer in self.viewers.of_session(sid if sid else f"jti:{jti}"):
            viewer.finish(LOGOUT_REVOKED)
