"""Operators' endpoints while a backing service goes away under a running web."""

import requests

from tests import processes
from tests.conftest import LOG_DIR
from tests.own_servers import OwnRedis


def test_readyz_is_503_while_redis_does_not_answer(base_env):
    own = OwnRedis()
    web, base = processes.start_web({**base_env, "REDIS_URL": own.url}, LOG_DIR, workers=1)
    try:
        ready = requests.get(f"{base}/readyz", timeout=15)
        assert ready.status_code == 200 and ready.json()["checks"] == {"postgresql": "ok", "redis": "ok"}
        own.kill()
        assert requests.get(f"{base}/healthz", timeout=15).status_code == 200
        r = requests.get(f"{base}/readyz", timeout=15)
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "unavailable" and body["checks"]["postgresql"] == "ok"
        assert body["checks"]["redis"].startswith("error")
        metrics = requests.get(f"{base}/metrics", timeout=15)
        assert metrics.status_code == 200 and "scoreboard_redis_up 0.0" in metrics.text
        own.start()
        assert requests.get(f"{base}/readyz", timeout=15).status_code == 200
    finally:
        web.stop()
        own.close()
