"""The live stream behind the project's nginx gateway: one origin for the page, the API
and the streams, events passed on unbuffered, stream instances balanced."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.gateway import Gateway
from tests.sse import Stream
from tests.streams import live, stream_environment  # noqa: F401 (fixture)


@pytest.fixture
def routed(live, base_env):
    env = {**base_env, "TRUSTED_PROXIES": "1"}
    web, web_base = processes.start_web(env, LOG_DIR, workers=1)
    streams = [processes.start_stream(stream_environment(env), LOG_DIR) for _ in range(2)]
    gw = Gateway([int(web_base.rsplit(":", 1)[1])], [int(base.rsplit(":", 1)[1]) for _, base in streams])
    yield gw, streams
    gw.close()
    for proc in [web, *(p for p, _ in streams)]:
        proc.stop()


def test_streams_through_the_gateway(routed):
    gw, streams = routed
    page = requests.get(gw.base + "/")
    assert page.status_code == 200 and 'id="scoreboard"' in page.text
    p = Player(gw.base)
    opened = [Stream(gw.base, p.tokens["access_token"], via="query") for _ in range(2)]
    try:
        for s in opened:
            assert s.status == 200
            assert s.next().retry and s.next().event == "scoreboard"
        viewers = [requests.get(base + "/readyz").json()["viewers"] for _, base in streams]
        assert sorted(viewers) == [1, 1], "least-connections spreads the streams"
        job = p.earn(3)["job_id"]
        for s in opened:  # unbuffered: each event arrives as it is sent
            assert s.until(lambda e: e.event == "score").json()["job_id"] == job
    finally:
        for s in opened:
            s.close()


def logged(gw: Gateway, match) -> dict:
    """The gateway's first access line that ``match``es (nginx writes it once the response is done)."""
    deadline = time.monotonic() + 20
    while True:
        found = [line for line in gw.access_lines() if match(line)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, "no such line in the gateway's access log"
        time.sleep(0.1)


def test_the_gateway_logs_json_with_the_apps_request_id_and_no_credential(routed):
    gw, _ = routed
    p = Player(gw.base)
    token = p.tokens["access_token"]
    board = requests.get(f"{gw.base}/api/scoreboard?limit=5&access_token={token}")
    stream = Stream(gw.base, token, via="query", query={"last_event_id": "1-1"})
    assert stream.status == 200 and stream.next().retry
    stream.close()
    assert logged(gw, lambda line: line["path"] == "/api/scoreboard/stream")["query"] == "[redacted]"
    logged_board = logged(gw, lambda line: line["path"] == "/api/scoreboard")
    assert logged_board["query"] == "[redacted]"
    assert logged_board["request_id"] == board.headers["X-Request-ID"], "the id the web logs and answers with"
    plain = requests.get(f"{gw.base}/api/scoreboard?limit=3")
    logged_plain = logged(gw, lambda line: line["request_id"] == plain.headers["X-Request-ID"])
    assert logged_plain["query"] == "limit=3" and logged_plain["process"] == "gateway" and logged_plain["status"] == 200
    text = json.dumps(gw.access_lines())
    assert token not in text and token[-40:] not in text
