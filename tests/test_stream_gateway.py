"""The live stream behind the project's nginx gateway: one origin for the page, the API
and the streams, events passed on unbuffered, stream instances balanced."""

from __future__ import annotations

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
