"""Request bodies that come slowly, end early or are malformed, against a real gunicorn.

A web with few connections per worker (``WORKER_CONNECTIONS``) stands in for the
production one: more clients than it has connections each send half a body and wait.
Without a deadline on the body they held every connection for as long as they liked and
the web stopped answering; with it they are answered 408 and the web keeps serving.
"""

from __future__ import annotations

import socket

import pytest
import requests

from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.raw_http import connect, read_all
from tests.test_metrics import scrape, value

CONNECTIONS = 20  # per worker, one worker
BODY_TIMEOUT = 2
SLOW_CLIENTS = 3 * CONNECTIONS  # enough to hold every connection, twice over


@pytest.fixture(scope="module")
def small_web(stack, base_env):
    env = {**base_env, "WORKER_CONNECTIONS": str(CONNECTIONS), "REQUEST_BODY_TIMEOUT": str(BODY_TIMEOUT)}
    proc, base = processes.start_web(env, LOG_DIR, workers=1)
    yield proc, base
    proc.stop()


def open_request(base: str, head: str, body: bytes) -> socket.socket:
    """A connection that has sent ``head`` (request line and headers) and ``body``, and waits."""
    sock = connect(base)
    sock.sendall(head.encode() + body)
    return sock


def head(path: str, *headers: str) -> str:
    return "\r\n".join([f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json", *headers, "", ""])


def half_a_chunk(base: str) -> socket.socket:
    return open_request(base, head("/api/actions", "Transfer-Encoding: chunked"), b"100\r\n" + b" " * 128)


def half_a_length(base: str) -> socket.socket:
    return open_request(base, head("/api/actions", "Content-Length: 256"), b" " * 128)


@pytest.mark.slow
def test_the_web_keeps_answering_while_slow_bodies_wait(small_web, api):
    proc, base = small_web
    waiting = [(half_a_chunk if i % 2 else half_a_length)(base) for i in range(SLOW_CLIENTS)]
    try:
        # every connection of the worker is taken by a slow client, and more queue behind them:
        # the web still answers, once the deadline has sent the ones ahead away
        assert requests.get(f"{base}/healthz", timeout=60).status_code == 200
        p = Player(base)
        assert p.http.post(f"{base}/api/actions", json={"action_type": "tap"}, timeout=60).status_code == 201
        for sock in waiting:
            reply = read_all(sock)
            assert reply.startswith(b"HTTP/1.1 408 "), reply[:300]
            assert b'"code":"request_timeout"' in reply and b"Content-Type: application/json" in reply
    finally:
        for sock in waiting:
            sock.close()
    assert "Traceback" not in proc.output()


@pytest.mark.slow
def test_a_client_gone_mid_body_is_no_server_error(small_web, api):
    proc, base = small_web
    before = scrape(f"{base}/metrics")
    for opened in (half_a_chunk, half_a_length):
        sock = opened(base)
        sock.shutdown(socket.SHUT_WR)  # the upload ends early: the client has gone
        read_all(sock)
        sock.close()
    # broken chunked framing is the client's fault too, and said in the contract's shape
    sock = open_request(base, head("/api/actions", "Transfer-Encoding: chunked"), b"zz\r\n{}\r\n0\r\n\r\n")
    reply = read_all(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 400 ") and b'"code":"malformed_request"' in reply, reply[:300]
    assert requests.get(f"{base}/healthz").status_code == 200
    after = scrape(f"{base}/metrics")

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("scoreboard_http_client_disconnects_total", route="/api/actions", method="POST") == 2
    assert grew("scoreboard_http_requests_total", route="/api/actions", status="500") == 0
    assert grew("scoreboard_http_requests_total", route="/api/actions") == 1  # the malformed one alone
    log = proc.output()
    assert "Traceback" not in log and "unhandled error" not in log
    assert "client went away before its request body was whole" in log
