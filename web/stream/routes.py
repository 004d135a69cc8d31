"""``GET /api/scoreboard/stream``: open a viewer's stream (contract, "Live stream")."""

from __future__ import annotations

import socket
import time

import gevent
from flask import Blueprint, Response, current_app, request

from scoreboard.boards import ALL_TIME_ID
from scoreboard.events import EventId, after_board, parse_event_id, sse
from web.errors import error_response
from web.stream.auth import StreamRefused, decode, revoked, token_of
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


def unavailable(message: str) -> StreamRefused:
    return StreamRefused(503, "unavailable", message, retry_after=1)


@blp.errorhandler(StreamRefused)
def refused(exc: StreamRefused):
    headers = [("Retry-After", str(exc.retry_after))] if exc.retry_after else None
    response = error_response(exc.status, exc.code, exc.message, headers=headers)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@blp.route("/api/scoreboard/stream", methods=["GET"])
def stream():
    """The live board and the caller's own events, as Server-Sent Events."""
    hub: Hub = current_app.extensions["stream_hub"]
    hub.start()
    if hub.draining:
        raise unavailable("This stream server is shutting down; reconnect.")
    board = request.args.get("board", ALL_TIME_ID)
    if board not in {b.id for b in hub.settings.boards}:
        raise StreamRefused(404, "unknown_board", f"There is no board {board[:40]!r}.")
    identity = decode(token_of(request.headers, request.args, request.cookies), hub.settings)
    last = parse_event_id(request.headers.get("Last-Event-ID") or request.args.get("last_event_id"))
    viewer = Viewer(identity.user_id, identity.jti, identity.sid, identity.expires_at, hub.settings.stream.queue_max,
                    board)
    version, board = admit(hub, viewer)
    if not hub.wait_until(version, SYNC_WAIT_S / 10) and hub.ready.is_set():
        hub.sync()  # Redis is ahead of the messages this process received
    if not hub.wait_until(version, SYNC_WAIT_S):
        hub.redis.zrem(hub.keys.streams(viewer.user_id), viewer.id)
        raise unavailable("The live stream is catching up with Redis; try again shortly.")
    viewer.socket = request.environ.get("gunicorn.socket")
    limit_send_buffer(viewer.socket, hub.settings.stream.send_buffer)
    body = StreamBody(hub, viewer, version, board, last or after_board(version),
                      writes_chunks=request.environ.get("SERVER_PROTOCOL") == "HTTP/1.1")
    # direct_passthrough: the server iterates the body itself, not through werkzeug's encoding
    # and closing wrappers (two frames less on every idle greenlet's saved stack, and the
    # Response object is not kept for the life of the stream); StreamBody.close is called.
    return Response(body, mimetype="text/event-stream", headers=HEADERS, direct_passthrough=True)


def limit_send_buffer(sock, size: int) -> None:
    """Bound what the kernel holds for one viewer (autotuning would let it grow to MBs):
    a viewer that stops reading then fills its queue here and is disconnected."""
    if sock is not None and size > 0:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except OSError:
            pass


def admit(hub: Hub, viewer: Viewer) -> tuple[int, bytes]:
    """Check revocation and the per-user cap, and read the current board, in one round trip.

    Returns:
        the board's version and its ``event: scoreboard`` bytes.

    Raises:
        StreamRefused: revoked (401), too many open streams (429), no board yet (503).
    """
    k, settings = hub.keys, hub.settings
    key, now, stale = k.streams(viewer.user_id), time.time(), stale_after(settings.stream)
    pipe = hub.redis.pipeline(transaction=True)
    pipe.exists(k.revoked(viewer.jti), *([k.revoked_session(viewer.sid)] if viewer.sid else []))
    pipe.zremrangebyscore(key, "-inf", now - stale)
    pipe.zadd(key, {viewer.id: now})
    pipe.zcard(key)
    pipe.expire(key, stale)
    is_revoked, _, _, count, _ = pipe.execute()
    if is_revoked or count > settings.stream.max_per_user:
        hub.redis.zrem(key, viewer.id)
        if is_revoked:
            raise revoked()
        raise StreamRefused(429, "too_many_streams",
                            f"At most {settings.stream.max_per_user} live streams per user; close one first.",
                            retry_after=5)
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
        events = hub.replay(viewer.user_id, after)
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
