"""gunicorn's access lines, of the web and the stream process: none unless ``ACCESS_LOG`` is
set, and never a credential in them (query, headers, cookies) when it is; the stream's own
lines say ``"process": "stream"``."""

from __future__ import annotations

import shlex
import time

import orjson
import pytest
import requests

from tests import processes
from web.access_log import redact_query
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.sse import Stream
from tests.streams import live, stream_environment  # noqa: F401 (fixture)

# Every atom that could show a credential, as an operator's own format might name them.
FORMAT = ('%(h)s "%(r)s" %(s)s q=%(q)s ref=%(f)s auth=%({authorization}i)s cookie=%({cookie}i)s '
          'csrf=%({x-csrftoken}i)s env_auth=%({http_authorization}e)s env_cookie=%({http_cookie}e)s '
          'env_query=%({query_string}e)s env_uri=%({raw_uri}e)s set_cookie=%({set-cookie}o)s')


def lines(proc) -> list[dict]:
    return [orjson.loads(line) for line in proc.output().splitlines() if line.strip()]


def wait_for_line(proc, match, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in lines(proc) if match(line)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no such line in {proc.name}'s log")


@pytest.mark.parametrize("query,logged", [
    ("", ""),
    ("limit=10", "limit=10"),
    ("access_token=abc.def&limit=10", "access_token=[redacted]&limit=10"),
    ("access%5Ftoken=abc&ACCESS_TOKEN=def&Refresh_Token=x", "access%5Ftoken=[redacted]&ACCESS_TOKEN=[redacted]&Refresh_Token=[redacted]"),
    ("password=a&api_key=b&signature=c&last_event_id=9-1", "password=[redacted]&api_key=[redacted]&signature=[redacted]&last_event_id=9-1"),
    ("access_token&x=1", "access_token&x=1"),
])
def test_credentials_in_a_query_are_redacted(query, logged):
    assert redact_query(query) == logged


def refused_marker(session: requests.Session, base: str) -> str:
    """A refused request on ``session``'s connection whose security event is logged before its
    answer: once it is answered, the access line of every earlier request on that connection
    has been written (a gevent worker serves one connection's requests in turn)."""
    marker = f"marker-{time.time_ns()}"
    resp = session.get(f"{base}/api/users/me", headers={"Authorization": "Bearer nope", "X-Request-ID": marker})
    assert resp.status_code == 401
    return marker


def test_no_access_lines_unless_asked(api, stack):
    token = Player(api).tokens["access_token"]
    with requests.Session() as s:
        # refused (422: /healthz declares no query parameter), and still no access line
        assert s.get(f"{api}/healthz", params={"access_token": token}).status_code == 422
        marker = refused_marker(s, api)
    wait_for_line(stack.web, lambda l: l.get("request_id") == marker and l["logger"] == "scoreboard.security")
    assert not [line for line in lines(stack.web) if line["logger"] == "gunicorn.access"]
    assert token not in stack.web.output()
    assert {line["process"] for line in lines(stack.web) if line["logger"] == "gunicorn.error"} == {"web"}


@pytest.fixture
def logged(live, base_env):
    """A web and a stream process with access lines on, in an operator's format naming every
    atom that could hold a credential."""
    env = dict(base_env, ACCESS_LOG="-", GUNICORN_CMD_ARGS=f"--access-logformat {shlex.quote(FORMAT)}")
    web, web_base = processes.start_web(env, LOG_DIR, workers=1)
    try:
        stream, stream_base = processes.start_stream(stream_environment(env), LOG_DIR)
        try:
            yield web, web_base, stream, stream_base
        finally:
            stream.stop()
    finally:
        web.stop()


def assert_no_credential(proc, secrets: list[str]) -> None:
    text = proc.output()
    for secret in secrets:
        assert secret not in text, f"a credential in {proc.name}'s log"


def test_access_lines_never_hold_a_credential(logged, api):
    web, web_base, stream, stream_base = logged
    player = Player(api)
    token = player.tokens["access_token"]
    cookie = f"sb_admin_session={token}x; _csrf_token={token}y"
    with requests.Session() as s:
        resp = s.get(f"{web_base}/healthz?access_token={token}&Access_Token={token}z&last_event_id=7-1",
                     headers={"Authorization": f"Bearer {token}", "Cookie": cookie, "X-CSRFToken": f"{token}w",
                              "Referer": f"{web_base}/?access_token={token}v"})
        assert resp.status_code == 422  # /healthz declares no query parameter: refused, and logged
        marker = refused_marker(s, web_base)
    line = wait_for_line(web, lambda l: l["logger"] == "gunicorn.access" and l.get("query"))
    assert line["process"] == "web" and line["method"] == "GET" and line["status"] == 422
    assert line["path"] == "/healthz" and line["query"] == "access_token=[redacted]&Access_Token=[redacted]&last_event_id=7-1"
    assert line["request_id"] == resp.headers["X-Request-ID"] and line["duration_ms"] >= 0
    query = "access_token=[redacted]&Access_Token=[redacted]&last_event_id=7-1"
    for shown in (f'"GET /healthz?{query} HTTP/1.1"', f"q={query} ", f"env_query={query} ", f"env_uri=/healthz?{query} ",
                  f"ref={web_base}/?access_token=[redacted] "):
        assert shown in line["message"], shown
    for atom in ("auth", "cookie", "csrf", "env_auth", "env_cookie"):
        assert f"{atom}=[redacted]" in line["message"], atom
    wait_for_line(web, lambda l: l["logger"] == "gunicorn.access" and l.get("request_id") == marker)

    stream_open = Stream(stream_base, token, via="query")
    try:
        assert stream_open.status == 200
        stream_open.until(lambda e: e.event == "scoreboard")
    finally:
        stream_open.close()
    line = wait_for_line(stream, lambda l: l["logger"] == "gunicorn.access" and l.get("path") ==
                         "/api/scoreboard/stream")
    assert line["process"] == "stream" and line["query"] == "access_token=[redacted]"
    assert "GET /api/scoreboard/stream?access_token=[redacted] HTTP/1.1" in line["message"]

    assert_no_credential(web, [token, token[-40:]])
    assert_no_credential(stream, [token, token[-40:]])
    assert {line["process"] for line in lines(stream) if line["logger"].startswith("gunicorn.")} == {"stream"}
