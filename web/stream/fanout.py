"""What the viewers of one process get: each board to its viewers (coalesced, latest wins),
a closed period's final standings to its board's viewers, personal events to the viewers
of their user (never to anonymous viewers), a logout to the viewers of that session, or of
that user when they are banned.

Each event is encoded once and the same bytes are shared by every viewer.
"""

from __future__ import annotations

import time

import gevent

from scoreboard import metrics
from scoreboard.boards import ALL_TIME_ID
from scoreboard.events import EventId, Message, PersonalEvent, board_event, closed_event, sse
from web.stream.registry import Viewers
from web.stream.viewer import frame

LOGOUT_REVOKED = sse("logout", b'{"reason":"revoked"}')
LOGOUT_BANNED = sse("logout", b'{"reason":"banned"}')


class FanOut:
    """The boards of the process and their broadcasts, and the delivery of personal events.

    Each board (by id) has its latest body and its own broadcast pace; its viewers are the
    ones who asked for it (``?board=``, the all-time board by default).

    Args:
        viewers: the process's viewers.
        board_interval_s: the least time between two broadcasts of one board.
        stats: the process's counters.
    """

    def __init__(self, viewers: Viewers, board_interval_s: float, stats: dict[str, int]):
        self.viewers = viewers
        self.board_interval_s = board_interval_s
        self.stats = stats
        self.boards: dict[str, tuple[int, bytes, bytes, bytes]] = {}  # board: version, body, event bytes, framed
        self._pending: set[str] = set()
        self._last_broadcast: dict[str, float] = {}

    @property
    def board(self) -> tuple[int, bytes, bytes, bytes] | None:
        """The all-time board's latest (version, body, event bytes, framed)."""
        return self.boards.get(ALL_TIME_ID)

    def set_board(self, version: int, body: bytes, board: str = ALL_TIME_ID) -> None:
        """A newer body of ``board``: broadcast now, or at the end of the board interval (latest wins)."""
        current = self.boards.get(board)
        if current is not None and version <= current[0]:
            return
        event = board_event(version, body)
        self.boards[board] = (version, body, event, frame(event))
        if board in self._pending:
            return
        delay = self._last_broadcast.get(board, 0.0) + self.board_interval_s - time.monotonic()
        if delay <= 0:
            self._broadcast(board)
        else:
            self._pending.add(board)
            gevent.spawn_later(delay, self._broadcast, board)

    def _broadcast(self, board: str) -> None:
        self._pending.discard(board)
        self._last_broadcast[board] = time.monotonic()
        version, _, payload, framed = self.boards[board]
        self.stats["boards"] += 1
        viewers = self.viewers.of_board(board)
        for viewer in viewers:  # a failed direct send may end a viewer
            viewer.offer_board(version, payload, framed)
        metrics.event_sent("scoreboard", len(viewers))

    def period_closed(self, version: int, board: str, data: bytes) -> None:
        """``event: period_closed`` to the board's viewers, ahead of the new period's board."""
        event = PersonalEvent(EventId(version, 0), 0, "period_closed", closed_event(data))
        viewers = self.viewers.of_board(board)
        for viewer in viewers:
            if not viewer.offer_personal(event):
                self.viewers.abort(viewer, "queue full")
        metrics.event_sent("period_closed", len(viewers))

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
