"""HTTP spoken by hand over a socket, for what a well-behaved client library will not send:
slow or cut-off bodies, oversized or malformed request lines and headers."""

from __future__ import annotations

import json
import socket

from web.errors import HTTP_CODES
from web.gunicorn_errors import REFUSALS


def connect(base: str, source: str = "127.0.0.1") -> socket.socket:
    """A connection to ``base`` (``http://host:port``) from the loopback address ``source``."""
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=60, source_address=(source, 0))


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def exchange(base: str, data: bytes, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    """Send raw bytes, read until the server closes; the status, headers (lower-case names) and body."""
    with connect(base, source) as sock:
        sock.sendall(data)
        return parse(read_all(sock))


def parse(reply: bytes) -> tuple[int, dict, bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_refusal(status: int, headers: dict, body: bytes, expected: int) -> None:
    """The JSON error the service gives for ``expected`` when it refuses a request before the
    app reads it (gunicorn's own refusals, or the gateway's), word for word."""
    assert status == expected, body[:300]
    assert headers["content-type"] == "application/json"
    code, message = REFUSALS.get(expected) or HTTP_CODES[expected]
    assert json.loads(body) == {"error": {"code": code, "message": message}}
