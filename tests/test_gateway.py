"""The gateway: nginx (the project's configuration) in front of two web instances."""

import pytest
import requests
from requests.adapters import HTTPAdapter

from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.gateway import Gateway


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
