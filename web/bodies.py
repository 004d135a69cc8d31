"""Request bodies: read whole before the view, within the size limit and a deadline.

A gevent worker holds one of its ``worker_connections`` for each request it reads, and
reading a body has no deadline of its own: a client that sends half a chunk and waits
held its connection for good, and enough of them took the whole web down. So every body
is read here, before the view, from the server's input stream:

- within ``REQUEST_BODY_TIMEOUT`` seconds in all (``Settings.http.body_timeout``), else
  408 ``request_timeout``; gunicorn then closes the connection (it never reuses one whose
  body read failed, and the deadline fails the read itself);
- a chunked body over ``MAX_CONTENT_LENGTH`` is refused with 413 like one whose
  ``Content-Length`` says so. Werkzeug checks ``Content-Length`` itself, but would read a
  chunked body only up to the limit and silently drop the rest (a truncated body that may
  even parse); so it is read one byte past the limit at most, and the oversized one fails
  when the view reads it, in the contract's order of checks (JWT and rate limit first);
- a client that goes away before its body is whole is no server error: logged at info,
  answered ``client_disconnected`` (which nobody reads), and counted apart
  (``scoreboard_http_client_disconnects``), never as a 500 nor in the request counts;
- broken chunked framing is the client's: 400 ``malformed_request``.

The view then reads the body from memory, with its length.
"""

from __future__ import annotations

import io
import logging

import gevent
from flask import Flask, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import RequestTimeout

from scoreboard.errors import Refused
from scoreboard.settings import Settings

log = logging.getLogger(__name__)

READ_SIZE = 65536


class _TimedOut(Exception):
    """The body's deadline passed. An ``Exception`` (``gevent.Timeout`` is not one) so that
    the server's reader, which it interrupts, marks the body failed and closes the connection."""


def install(app: Flask, settings: Settings) -> None:
    """Read every request body of ``app`` before its view (see the module's docstring)."""
    timeout = settings.http.body_timeout

    @app.before_request
    def _read_body():
        read_body(timeout)


def read_body(timeout: float) -> None:
    """Read the current request's body into memory within ``timeout`` seconds.

    Raises:
        RequestTimeout: the body did not arrive whole in time (408).
        Refused: ``client_disconnected`` (the client went away mid-body) or
            ``malformed_request`` (broken chunked framing).
    """
    environ = request.environ
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    limit = request.max_content_length
    if chunked:
        if limit is None:
            return
        wanted = limit + 1
    else:
        length = request.content_length
        if not length or (limit is not None and length > limit):
            return  # nothing to read, or werkzeug's 413 when the view reads it
        wanted = length
    raw = environ["wsgi.input"]
    body = bytearray()
    try:
        with gevent.Timeout(timeout, _TimedOut):
            while len(body) < wanted:
                piece = raw.read(min(READ_SIZE, wanted - len(body)))
                if not piece:
                    break
                body += piece
    except _TimedOut:
        log.info("request body too slow", extra={"received": len(body), "timeout_s": timeout})
        raise RequestTimeout() from None
    except ParseException as exc:
        raise Refused("malformed_request", f"The chunked request body is malformed: {exc}") from None
    except OSError as exc:  # gunicorn's NoMoreData (end of stream mid-chunk), a reset
        _client_gone(len(body), repr(exc))
    if not chunked and len(body) < wanted:
        _client_gone(len(body), "end of stream before Content-Length")
    environ["wsgi.input"] = io.BytesIO(bytes(body))
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)  # de-chunked now: werkzeug ignores a length beside "chunked"


def _client_gone(received: int, reason: str) -> None:
    log.info("client went away before its request body was whole", extra={"received": received, "reason": reason})
    raise Refused("client_disconnected", "The request body ended before it was whole.")
