"""The gateway: nginx (the project's configuration) in front of two web instances."""

import json
import re
import threading

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.gateway import CONF, Gateway
from tests.raw_http import assert_refusal, connect, exchange
from web.errors import HTTP_CODES
from web.gunicorn_errors import REFUSALS


class FromAddress(HTTPAdapter):
    """Connect from a given loopback address, as a distinct client would."""

    def __init__(self, address):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_at(address):
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


@pytest.fixture
def gateway(api, base_env):
    env = {**base_env, "TRUSTED_PROXIES": "1", "RATE_LIMIT_LOGIN": "3 per minute"}
    webs = [processes.start_web(env, LOG_DIR, workers=1) for _ in range(2)]
    gw = Gateway([int(base.rsplit(":", 1)[1]) for _, base in webs], [processes.free_port()])
    yield gw, webs
    gw.close()
    for proc, _ in webs:
        proc.stop()


def test_rate_limits_apply_per_client_behind_the_proxy(gateway):
    gw, _ = gateway
    Player(gw.base, "gwuser")
    a, b = client_at("127.0.0.2"), client_at("127.0.0.3")
    body = {"username": "gwuser", "password": "wrong password"}
    codes_a = [a.post(f"{gw.base}/api/auth/login", json=body).status_code for _ in range(4)]
    assert codes_a == [401, 401, 401, 429]
    # another client, same proxy: not limited by the first one's attempts
    assert b.post(f"{gw.base}/api/auth/login", json=body).status_code == 401


def test_a_web_instance_down_is_routed_around(gateway):
    gw, webs = gateway
    p = Player(gw.base)
    webs[0][0].stop()
    for _ in range(6):
        assert p.http.get(f"{gw.base}/api/users/me").status_code == 200
        assert p.submit(p.start(), 1).status_code == 202


def test_gateway_errors_keep_the_contract_shape(gateway):
    gw, webs = gateway
    resp = requests.post(f"{gw.base}/api/score/update", data=b"x" * 20000,
                         headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"
    for proc, _ in webs:
        proc.stop()
    resp = requests.get(f"{gw.base}/api/scoreboard")
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "unavailable"



def test_every_error_the_gateway_answers_itself_says_what_the_service_says():
    """The gateway's own error bodies (deploy/nginx/scoreboard.conf) are those gunicorn and
    the app give for the same status, word for word."""
    # gunicorn's own refusals say what the app says for the same status (400 aside: the
    # app's is a body that is not JSON, gunicorn's a request that is not HTTP)
    for status in set(REFUSALS) & set(HTTP_CODES) - {400}:
        assert REFUSALS[status] == HTTP_CODES[status], status
    pages = re.findall(r"return (\d{3}) '(\{.*\})';", CONF.read_text())
    assert {int(status) for status, _ in pages} >= {400, 404, 408, 413, 414, 429, 431, 503}
    for status, body in pages:
        code, message = REFUSALS.get(int(status)) or HTTP_CODES[int(status)]
        assert json.loads(body) == {"error": {"code": code, "message": message}}, status


def test_what_the_gateway_refuses_itself_is_in_the_contract_shape(gateway):
    gw, _ = gateway
    long_line = b"GET /api/scoreboard?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert_refusal(*exchange(gw.base, long_line), 414)
    big_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    assert_refusal(*exchange(gw.base, big_header), 431)
    assert_refusal(*exchange(gw.base, b"NOT HTTP AT ALL\r\n\r\n"), 400)
    status, headers, body = exchange(gw.base, b"GET /.gateway-errors/414 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    # a line nginx lets through but gunicorn's limit refuses: the same shape, from the instance
    line_for_gunicorn = b"GET /api/scoreboard?x=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert_refusal(*exchange(gw.base, line_for_gunicorn), 414)


def test_slow_clients_wait_at_the_gateway_within_a_per_address_limit(gateway):
    """Clients that send half a body are held by nginx (it reads whole bodies before it
    opens a request to an instance), at most 100 connections per address; the next one from
    that address is 429, and other addresses are served as usual."""
    gw, _ = gateway
    head = b"POST /api/actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    slow = []
    try:
        for _ in range(100):
            sock = connect(gw.base, "127.0.0.2")
            sock.sendall(head + b'{"action')
            slow.append(sock)
        status, headers, body = exchange(gw.base, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                         "127.0.0.2")
        assert status == 429 and json.loads(body)["error"]["code"] == "rate_limited" and headers["retry-after"] == "1"
        p = Player(gw.base)  # from 127.0.0.1
        assert p.http.post(f"{gw.base}/api/actions", json={"action_type": "tap"}).status_code == 201
        assert client_at("127.0.0.3").get(f"{gw.base}/healthz").status_code == 200
    finally:
        for sock in slow:
            sock.close()


def test_request_rates_are_limited_per_address(gateway):
    """Requests from one address beyond 100 a second (bursts of 200) are 429; several
    clients behind that address ask faster than that, and another address is served."""
    gw, _ = gateway
    limited, stop = [], threading.Event()

    def ask():
        client = client_at("127.0.0.4")
        for _ in range(500):
            if stop.is_set():
                return
            resp = client.get(f"{gw.base}/healthz")
            if resp.status_code != 200:
                limited.append(resp)
                stop.set()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert limited, "no request was limited"
    resp = limited[0]
    assert resp.status_code == 429 and resp.json()["error"]["code"] == "rate_limited"
    assert resp.headers["Retry-After"] == "1"
    assert client_at("127.0.0.5").get(f"{gw.base}/healthz").status_code == 200  # another address
