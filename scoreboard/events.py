"""Live events: the published messages, their Server-Sent Events bytes, and the replay
window of personal events. Pure Python and Redis; no web framework, no event loop.

``Applier.apply_batch`` (via ``lua/publish.lua``) publishes one message per batch on
``Keys.events_channel`` and appends each personal event to the capped stream
``Keys.events_log`` under the id ``<version>-<k>``. A viewer that reconnects with
``Last-Event-ID`` gets the personal events after that id again, from a window that mirrors
the capped stream in the stream process's memory.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson
import redis

from scoreboard.redis_client import Keys


class EventId(NamedTuple):
    """A position in the event sequence: ``V`` (a board) is ``(V, 0)``, ``V-k`` is ``(V, k)``."""

    version: int
    seq: int = 0

    def __str__(self) -> str:
        return f"{self.version}-{self.seq}"


ZERO = EventId(0, 0)
_LAST_SEQ = 2**63 - 1


def after_board(version: int) -> EventId:
    """The position right after board ``version`` and every personal event published with it."""
    return EventId(version, _LAST_SEQ)


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes "²" (which ``int`` refuses) and other
    scripts' digits (which no id of ours has)."""
    return text.isascii() and text.isdigit()


def parse_event_id(raw: str | bytes | None) -> EventId | None:
    """Parse ``Last-Event-ID``: ``"V"`` or ``"V-k"`` (non-negative integers); None if malformed."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    raw = raw.strip()
    if not raw or len(raw) > 48:
        return None
    head, sep, tail = raw.partition("-")
    if not _digits(head) or (sep and not _digits(tail)):
        return None
    return EventId(int(head), int(tail) if sep else 0)


def sse(event: str | None = None, data: bytes | None = None, event_id: str | None = None,
        retry_ms: int | None = None) -> bytes:
    """Encode one Server-Sent Event (``data`` may span lines; each becomes a ``data:`` line)."""
    parts = []
    if retry_ms is not None:
        parts.append(b"retry: %d\n" % retry_ms)
    if event:
        parts.append(b"event: " + event.encode() + b"\n")
    if event_id is not None:
        parts.append(b"id: " + event_id.encode() + b"\n")
    if data is not None:
        for line in data.split(b"\n"):
            parts.append(b"data: " + line.rstrip(b"\r") + b"\n")
    return b"".join(parts) + b"\n"


PING = b": ping\n\n"


def board_event(version: int, body: bytes) -> bytes:
    """The ``event: scoreboard`` bytes of a board body (the ``GET /api/scoreboard`` JSON)."""
    return sse("scoreboard", body, str(version))


def closed_event(data: bytes) -> bytes:
    """The ``event: period_closed`` bytes: no ``id``, so a viewer's Last-Event-ID stays the
    last personal event's or board's."""
    return sse("period_closed", data)


@dataclass(frozen=True)
class PersonalEvent:
    """One ``score`` or ``rejected`` event for one user, encoded once."""

    id: EventId
    user_id: int
    event: str
    payload: bytes  # the SSE bytes

    @classmethod
    def make(cls, event_id: EventId, user_id: int, event: str, data: bytes) -> "PersonalEvent":
        return cls(event_id, user_id, event, sse(event, data, str(event_id)))


@dataclass
class Message:
    """A published message, decoded. Exactly one of the shapes is set:

    a change of the boards (``version``, the ``boards`` whose top 10 changed, by board id,
    the periods that ``closed`` (each a ``period_closed`` event's data), ``personal``
    events), or a ``logout``.
    """

    version: int = 0
    boards: dict[str, bytes] = field(default_factory=dict)
    closed: list[tuple[str, bytes]] = field(default_factory=list)  # (board id, period_closed data)
    personal: list[PersonalEvent] = field(default_factory=list)
    logout: dict | None = None

    @property
    def board(self) -> bytes | None:
        """The all-time board's body, when its top 10 changed."""
        return self.boards.get("all-time")


def logout_message(*, sid: str | None = None, jti: str | None = None, user_id: int | None = None) -> bytes:
    """The message that ends streams: those of a login session (``sid``, else the token
    ``jti``) when it is revoked, or every stream of ``user_id`` when the user is banned."""
    if user_id is not None:
        return orjson.dumps({"logout": {"user_id": user_id, "reason": "banned"}})
    return orjson.dumps({"logout": {"sid": sid, "jti": jti}})


def parse_message(raw: bytes) -> Message:
    """Decode a message of ``Keys.events_channel``.

    Raises:
        ValueError: the message is not one of the published shapes.
    """
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("message is not an object")
    if "logout" in body:
        logout = body["logout"]
        if not isinstance(logout, dict):
            raise ValueError("logout is not an object")
        return Message(logout=logout)
    version = int(body["version"])
    boards = {str(board): orjson.dumps(top) for board, top in (body.get("boards") or {}).items()}
    closed = [(str(c["board"]), orjson.dumps(c)) for c in body.get("closed") or ()]
    personal = []
    for p in body.get("personal") or ():
        event_id = parse_event_id(str(p["id"]))
        if event_id is None:
            raise ValueError(f"bad personal event id {p['id']!r}")
        personal.append(PersonalEvent.make(event_id, int(p["user_id"]), str(p["event"]), orjson.dumps(p["data"])))
    return Message(version=version, boards=boards, closed=closed, personal=personal)


class ReplayWindow:
    """The last ``size`` personal events in id order, indexed by user.

    ``floor`` is the id below which events may be missing (trimmed from the capped
    stream, or dropped from this window): a replay after an id older than it is a gap.
    """

    def __init__(self, size: int):
        self.size = size
        self.floor = ZERO
        self._entries: deque[PersonalEvent] = deque()
        self._by_user: dict[int, deque[PersonalEvent]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last_id(self) -> EventId:
        return self._entries[-1].id if self._entries else self.floor

    def append(self, event: PersonalEvent) -> bool:
        """Add an event newer than every one held; False (and nothing kept) for an older one."""
        if event.id <= self.last_id:
            return False
        self._entries.append(event)
        self._by_user.setdefault(event.user_id, deque()).append(event)
        while len(self._entries) > self.size:
            old = self._entries.popleft()
            mine = self._by_user[old.user_id]
            mine.popleft()
            if not mine:
                del self._by_user[old.user_id]
            self.floor = old.id
        return True

    def since(self, user_id: int, after: EventId) -> list[PersonalEvent] | None:
        """The events of ``user_id`` with an id after ``after``; None when some may be lost."""
        if after < self.floor:
            return None
        mine = self._by_user.get(user_id)
        if not mine:
            return []
        ids = [e.id for e in mine]
        start = bisect.bisect_right(ids, after)
        return list(mine)[start:]


def load_window(r: redis.Redis, keys: Keys, window: ReplayWindow, chunk: int = 2000) -> tuple[list[PersonalEvent], bool]:
    """Add to ``window`` what the capped stream holds after ``window.last_id``.

    Returns:
        the events added, and whether some events after ``window.last_id`` were trimmed
        from the stream before they could be read (then ``window.floor`` moves up to them).
    """
    start = window.last_id
    lost = _max_deleted(r, keys.events_log)
    gap = lost > start
    if gap:
        window.floor = max(window.floor, lost)
    added: list[PersonalEvent] = []
    after = start
    while True:
        entries = r.xrange(keys.events_log, min=f"({after}", max="+", count=chunk)
        for raw_id, fields in entries:
            after = _parse_stream_id(raw_id)
            event = PersonalEvent.make(after, int(fields[b"user"]), fields[b"event"].decode(), fields[b"data"])
            if window.append(event):
                added.append(event)
        if len(entries) < chunk:
            return added, gap


def _parse_stream_id(raw: bytes | str) -> EventId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    head, _, tail = text.partition("-")
    return EventId(int(head), int(tail or 0))


def _max_deleted(r: redis.Redis, key: str) -> EventId:
    """The newest id trimmed from the capped stream (Redis >= 7), else ZERO."""
    try:
        info = r.xinfo_stream(key)
    except redis.ResponseError:  # no such key: nothing trimmed that we could know of
        return ZERO
    raw = info.get("max-deleted-entry-id") or info.get(b"max-deleted-entry-id")
    return _parse_stream_id(raw) if raw else ZERO

