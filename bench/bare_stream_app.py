"""The reference of the fan-out benchmark: a bare gevent WSGI app that keeps N event-stream
connections open and, when a board change arrives on its one Redis subscription, writes the
same ``event: scoreboard`` bytes as the real stream to every one of them.

Served by gunicorn with the stream process's own settings (``web/stream_gunicorn_conf.py``,
one gevent worker), triggered the same way (a PUBLISH on ``<REDIS_PREFIX>events``, the
message ``tests/publisher.py`` and ``scoreboard/lua/publish.lua`` publish), read by the same
viewer process. Nothing else: no authentication, no per-viewer queue, no coalescing, no
personal events, no heartbeat; the first bytes of a stream go through gunicorn (headers
and the current board), then the listener greenlet writes each change, framed once as an
HTTP/1.1 chunk, to each socket in one loop.

``BARE_STREAM_MODE=wsgi`` instead wakes each connection's greenlet, which yields the bytes
through gunicorn (the plain WSGI way), for comparison.
"""

from gevent import monkey

monkey.patch_all()  # gunicorn's gevent worker has done it already; a no-op there

import os  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402
import redis  # noqa: E402
from gevent.event import Event  # noqa: E402

CHANNEL = os.environ.get("REDIS_PREFIX", "sb:") + "events"
MODE = os.environ.get("BARE_STREAM_MODE", "loop")
HEADERS = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]

board = [b""]  # the current board's event bytes
viewers: dict = {}  # socket -> its Connection
listening: list = []


def frame(data: bytes) -> bytes:
    return b"%X\r\n%s\r\n" % (len(data), data)


class Connection:
    __slots__ = ("raw", "done", "next")

    def __init__(self, raw):
        self.raw = raw
        self.done = Event()
        self.next = None


def listen() -> None:
    client = redis.Redis.from_url(os.environ["REDIS_URL"], client_name=f"bare-stream:{os.getpid()}")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    for message in pubsub.listen():
        body = orjson.loads(message["data"])
        if body.get("board") is None:
            continue
        payload = b"event: scoreboard\nid: %d\ndata: %s\n\n" % (body["version"], orjson.dumps(body["board"]))
        board[0] = payload
        if MODE == "wsgi":
            for conn in list(viewers.values()):
                conn.next = payload
                conn.done.set()
            continue
        framed = frame(payload)
        for conn in list(viewers.values()):
            try:
                sent = conn.raw.send(framed)
            except BlockingIOError:
                sent = 0
            except OSError:
                viewers.pop(conn.raw, None)
                conn.done.set()
                continue
            if sent < len(framed):  # the kernel buffer is full: finish in a greenlet of its own
                gevent.spawn(_rest, conn, framed[sent:])


def _rest(conn: Connection, data: bytes) -> None:
    try:
        conn.raw.sendall(data)
    except OSError:
        viewers.pop(conn.raw, None)
        conn.done.set()


def body(conn: Connection):
    yield b"retry: 3000\n\n" + board[0]
    viewers[conn.raw] = conn
    try:
        while True:
            conn.done.wait()
            if conn.next is None:
                return
            payload, conn.next = conn.next, None
            conn.done.clear()
            yield payload
    finally:
        viewers.pop(conn.raw, None)


def app(environ, start_response):
    if not listening:
        listening.append(gevent.spawn(listen))
        gevent.sleep(0.2)  # subscribed before the first stream counts as open
    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status":"ok"}']
    sock = environ["gunicorn.socket"]
    start_response("200 OK", HEADERS)
    return body(Connection(getattr(sock, "_sock", sock) if MODE == "loop" else sock))
