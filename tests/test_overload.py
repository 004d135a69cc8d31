"""Thousands of idle or stuck streams do not starve the API, nor the viewers who read."""

import resource
import socket
import time
from urllib.parse import quote

import requests

from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.sse import Stream
from tests.streams import live, mint_token, stream_environment  # noqa: F401 (fixture)

IDLE = 2000


def test_thousands_of_idle_streams_do_not_starve_the_api(live, base_env, settings):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 3 * IDLE + 1024)), hard))
    env = stream_environment(base_env, STREAM_MAX_PER_USER=str(IDLE + 10))
    stream, base = processes.start_stream(env, LOG_DIR)
    host, port = base.rsplit("/", 1)[1].split(":")
    watcher, player = Player(live), Player(live)
    token = mint_token(settings, watcher.id)
    idle = []
    try:
        request = (f"GET /api/scoreboard/stream?access_token={quote(token)} HTTP/1.1\r\nHost: x\r\n"
                   "Accept: text/event-stream\r\n\r\n").encode()
        for _ in range(IDLE):  # they ask, then never read a byte
            s = socket.create_connection((host, int(port)))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(request)
            idle.append(s)
        deadline = time.monotonic() + 60
        while requests.get(f"{base}/readyz", timeout=10).json()["viewers"] < IDLE:
            assert time.monotonic() < deadline, "the stream process did not take every connection"
            time.sleep(0.2)

        reader = Stream(base, mint_token(settings, player.id))
        assert reader.status == 200 and reader.next().retry and reader.next().event == "scoreboard"
        # the API answers everything while the streams hang on
        for i in range(20):
            assert requests.get(f"{live}/api/scoreboard", timeout=10).status_code == 200
            result = player.earn(1 + i)
            assert result["state"] == "applied"
        # and a viewer who reads gets the board of the last change
        last = reader.until(lambda e: e.event == "scoreboard"
                            and any(x["user_id"] == player.id and x["score"] == 210 for x in e.json()["entries"]),
                            timeout=20)
        assert last.id
        reader.close()
    finally:
        for s in idle:
            s.close()
        stream.stop()
