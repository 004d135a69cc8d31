"""Operators' endpoints and the processes' behaviour when a backing service is gone."""

import requests

from tests import processes
from tests.conftest import LOG_DIR


def test_readyz_is_503_while_redis_does_not_answer(base_env):
    closed = processes.free_port()  # nothing listens there
    env = {**base_env, "REDIS_URL": f"redis://127.0.0.1:{closed}/0"}
    web, base = processes.start_web(env, LOG_DIR, workers=1)
    try:
        assert requests.get(f"{base}/healthz").status_code == 200
        r = requests.get(f"{base}/readyz", timeout=15)
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "unavailable" and body["checks"]["postgresql"] == "ok"
        assert body["checks"]["redis"].startswith("error")
        metrics = requests.get(f"{base}/metrics", timeout=15)
        assert metrics.status_code == 200 and "scoreboard_redis_up 0.0" in metrics.text
    finally:
        web.stop()
