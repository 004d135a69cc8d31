"""``GET /api/scoreboard/stream``: open a viewer's stream (contract, "Live stream").

With a valid access token the viewer gets the board and its own events, at most
``STREAM_MAX_PER_USER`` streams per user; a banned user is refused (403 ``user_banned``).
Without any token the viewer gets the board alone, at most
``STREAM_MAX_ANONYMOUS_PER_ADDRESS`` streams per client address (``TRUSTED_PROXIES``
says how far to believe ``X-Forwarded-For``; 0 turns anonymous viewers away). Each open
stream is an entry in a Redis sorted set (the user's, or the address's), refreshed every
heartbeat, so the caps hold across every stream process.
"""

from __future__ import annotations

import math
import socket
import time

import gevent
from flask import Blueprint, Response, current_app, request

from scoreboard.boards import ALL_TIME_ID
from scoreboard.events import EventId, after_board, parse_event_id, sse
from web.errors import error_response
from web.stream.auth import MISSING, StreamRefused, banned, decode, revoked, token_of
from web.stream.hub import RESYNC, Hub
from web.stream.listener import board_version
from web.stream.ticker import stale_after
from web.stream.viewer import Viewer

blp = Blueprint("stream", __name__)

SYNC_WAIT_S = 5.0
HEADERS = {
    "Cache-Control": "no-cache, no-store",
    "X-Accel-Buffering": "no",  # proxies must not buffer the stream
    "Access-Control-Allow-Origin": "*",  # the token authenticates, never an ambient cookie cross-site
}
# A page on another origin sends its token in the Authorization header: that needs a preflight.
PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET",
    "Access-Control-Allow-Headers": "Authorization, Last-Event-ID",
    "Access-Control-Max-Age": "600",
}


def unavailable(message: str) -> StreamRefused:
    return StreamRefused(503, "unavailable", message, retry_after=1)


@blp.errorhandler(StreamRefused)
def refused(exc: StreamRefused):
    headers = [("Retry-After", str(exc.retry_after))] if exc.retry_after else None
    response = error_response(exc.status, exc.code, exc.message, headers=headers)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = "Retry-After"
    return response


@blp.route("/api/scoreboard/stream", methods=["GET", "OPTIONS"])
def stream():
    """The live board and the caller's own events, as Server-Sent Events."""
    if request.method == "OPTIONS":
        return Response(status=204, headers=PREFLIGHT)
    hub: Hub = current_app.extensions["stream_hub"]
    hub.start()
    if hub.draining:
        raise unavailable("This stream server is shutting down; reconnect.")
    viewer = viewer_of(hub)
    last = parse_event_id(request.headers.get("Last-Event-ID") or request.args.get("last_event_id"))
    version, board = admit(hub, viewer)
    if not hub.wait_until(version, SYNC_WAIT_S / 10) and hub.ready.is_set():
        hub.sync()  # Redis is ahead of the messages this process received
    if not hub.wait_until(version, SYNC_WAIT_S):
        hub.redis.zrem(viewer.streams_key, viewer.id)
        raise unavailable("The live stream is catching up with Redis; try again shortly.")
    viewer.socket = request.environ.get("gunicorn.socket")
    limit_send_buffer(viewer.socket, hub.settings.stream.send_buffer)
    body = StreamBody(hub, viewer, version, board, last or after_board(version),
                      writes_chunks=request.environ.get("SERVER_PROTOCOL") == "HTTP/1.1")
    # direct_passthrough: the server iterates the body itself, not through werkzeug's encoding
    # and closing wrappers (two frames less on every idle greenlet's saved stack, and the
    # Response object is not kept for the life of the stream); StreamBody.close is called.
    return Response(body, mimetype="text/event-stream", headers=HEADERS, direct_passthrough=True)


def viewer_of(hub: Hub) -> Viewer:
    """The viewer of this request: a user's by their valid token, or an anonymous one.

    Raises:
        StreamRefused: an unknown board (404), a token that is not valid (401), or anonymous
            viewers turned away.
    """
    settings, queue_max = hub.settings.stream, hub.settings.stream.queue_max
    board = request.args.get("board", ALL_TIME_ID)
    if board not in {b.id for b in hub.settings.boards}:
        raise StreamRefused(404, "unknown_board", f"There is no board {board[:40]!r}.")
    token = token_of(request.headers, request.args, request.cookies)
    if token is None:
        if not settings.max_anonymous_per_address:
            raise MISSING
        address = request.remote_addr or "unknown"
        return Viewer(None, "", None, math.inf, queue_max, streams_key=hub.keys.anonymous_streams(address),
                      board=board)
    identity = decode(token, hub.settings)
    return Viewer(identity.user_id, identity.jti, identity.sid, identity.expires_at, queue_max,
                  streams_key=hub.keys.streams(identity.user_id), board=board)


def limit_send_buffer(sock, size: int) -> None:
    """Bound what the kernel holds for one viewer (autotuning would let it grow to MBs):
    a viewer that stops reading then fills its queue here and is disconnected."""
    if sock is not None and size > 0:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except OSError:
            pass


def admit(hub: Hub, viewer: Viewer) -> tuple[int, bytes]:
    """Check revocation, the ban and the cap on open streams in one round trip, then read
    the current board of the viewer's board.

    Returns:
        the board's version and its ``event: scoreboard`` bytes.

    Raises:
        StreamRefused: revoked (401), banned (403), too many open streams (429), no board yet (503).
    """
    k, settings = hub.keys, hub.settings.stream
    key, now, stale = viewer.streams_key, time.time(), stale_after(settings)
    pipe = hub.redis.pipeline(transaction=True)
    if not viewer.anonymous:
        pipe.exists(k.revoked(viewer.jti), *([k.revoked_session(viewer.sid)] if viewer.sid else []))
        pipe.sismember(k.banned, viewer.user_id)
    pipe.zremrangebyscore(key, "-inf", now - stale)
    pipe.zadd(key, {viewer.id: now})
    pipe.zcard(key)
    pipe.expire(key, stale)
    replies = pipe.execute()
    is_revoked, is_banned = (0, False) if viewer.anonymous else replies[:2]
    count = replies[-2]
    cap = settings.max_anonymous_per_address if viewer.anonymous else settings.max_per_user
    if is_revoked or is_banned or count > cap:
        hub.redis.zrem(key, viewer.id)
        if is_revoked:
            raise revoked()
        if is_banned:
            raise banned()
        whose = "client address without a token; log in, or close one" if viewer.anonymous else "user; close one first"
        raise StreamRefused(429, "too_many_streams", f"At most {cap} live streams per {whose}.", retry_after=5)
    # While the ranking is rebuilt (a fresh or flushed Redis), the warm-up job or the next
    # batch brings the board back within moments: wait for it rather than refuse at once.
    deadline = time.monotonic() + BOARD_WAIT_S
    latest = hub.fanout.boards.get(viewer.board)
    while True:
        body = hub.cached_board(viewer.board)
        if body is not None or latest is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # cooperative under gevent
    if body is not None:
        version = board_version(body)
        return version, sse("scoreboard", body, str(version))
    if latest is not None:  # the ranking is being rebuilt: the latest board this process saw
        return latest[0], latest[2]
    hub.redis.zrem(key, viewer.id)
    raise unavailable("The board is being rebuilt; try again shortly.")


BOARD_WAIT_S = 5.0


class StreamBody:
    """The response body: the first bytes, then whatever the viewer's queue gives.

    The viewer joins the hub when the server starts reading the body, in the same step
    as the replay is read, so that every personal event is either replayed or live.
    ``close`` (called by the server however the response ends) forgets the viewer.

    Under gunicorn on HTTP/1.1 the first bytes go through the server (with the headers);
    after them the viewer writes its chunks to the socket itself until the stream ends,
    and the server then ends the chunked body: no per-event trip through the WSGI layers,
    and the hub can send to an idle viewer without waking it.
    """

    __slots__ = ("hub", "viewer", "_first", "_own_writes")

    def __init__(self, hub: Hub, viewer: Viewer, version: int, board: bytes, after: EventId,
                 writes_chunks: bool = False):
        self.hub = hub
        self.viewer = viewer
        self._first: tuple[int, bytes, EventId] | None = (version, board, after)
        self._own_writes = writes_chunks and viewer.socket is not None

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        viewer = self.viewer
        viewer.writing_since = 0.0
        if self._first is not None:
            chunk = self._open()
        elif self._own_writes:
            self._write_until_the_end()
        else:
            chunk = viewer.take()
        if chunk is None:
            raise StopIteration
        viewer.writing_since = time.monotonic()
        return chunk

    def _open(self) -> bytes:
        hub, viewer = self.hub, self.viewer
        version, board, after = self._first
        self._first = None
        viewer.greenlet = gevent.getcurrent()
        events = [] if viewer.anonymous else hub.replay(viewer.user_id, after)
        viewer.sent_board = version
        viewer.last_personal = hub.window.last_id
        hub.add(viewer)
        hub.watch_peer(viewer)
        if hub.draining:
            viewer.finish(sse("reconnect", b'{"reason":"shutdown"}'))
        parts = [b"retry: %d\n\n" % hub.settings.stream.retry_ms, board]
        if events is None:
            parts.append(RESYNC)
        else:
            parts.extend(e.payload for e in events)
        return b"".join(parts)

    def _write_until_the_end(self):
        viewer, sock = self.viewer, self.viewer.socket
        viewer.chunked = True
        if not hasattr(sock, "getpeercert"):  # TLS must go through the wrapped socket
            viewer.direct = getattr(sock, "_sock", None)
        while True:
            chunk = viewer.take()
            if chunk is None:
                raise StopIteration
            viewer.writing_since = time.monotonic()
            sock.sendall(chunk)
            viewer.writing_since = 0.0

    def close(self) -> None:
        self.hub.remove(self.viewer)
