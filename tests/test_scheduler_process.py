"""``python -m scheduler``: exactly one scheduler enqueues; a second waits on standby and
takes over when the first stops. On a Redis index of its own that no worker listens on."""

import time
from collections import Counter

import redis as redis_lib
import requests
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from scheduler import cron
from tests import processes
from tests.conftest import LOG_DIR


def gauges(port):
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return {}
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("scoreboard_scheduler"):
                out[(s.name, s.labels.get("job"))] = s.value
    return out


def wait_until(check, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_one_scheduler_leads_and_a_second_takes_over(base_env, spare_redis_index):
    r = redis_lib.Redis.from_url(spare_redis_index.url)
    r.flushdb()
    env = {**base_env, "REDIS_URL": spare_redis_index.url, "REDIS_PREFIX": "sbsched:"}
    ports = [processes.free_port(), processes.free_port()]
    procs = [processes.start_scheduler({**env, "METRICS_PORT": str(port)}, LOG_DIR) for port in ports]
    started = time.monotonic()
    try:
        for proc, port in zip(procs, ports):
            processes.wait_http(f"http://127.0.0.1:{port}/metrics", proc)
        leading = lambda: [gauges(p).get(("scoreboard_scheduler_leader", None)) for p in ports]  # noqa: E731
        wait_until(lambda: sorted(leading()) == [0.0, 1.0], 15)
        first = leading().index(1.0)
        leader, standby = ports[first], ports[1 - first]
        wait_until(lambda: Queue(env["MAINTENANCE_QUEUE_NAME"], connection=r).count >= len(cron.JOBS), 10)
        enqueued = Counter(job.func_name for job in Queue(env["MAINTENANCE_QUEUE_NAME"], connection=r).get_jobs())
        elapsed = time.monotonic() - started
        for func, interval, _ in cron.JOBS:
            name = f"workers.maintenance.{func.__name__}"
            assert enqueued[name] in range(1, 2 + int(elapsed // interval)), (name, enqueued)
            assert gauges(leader)[("scoreboard_scheduler_jobs_enqueued_total", func.__name__)] >= 1
            assert ("scoreboard_scheduler_jobs_enqueued_total", func.__name__) not in gauges(standby)

        procs[first].stop()
        wait_until(lambda: gauges(standby).get(("scoreboard_scheduler_leader", None)) == 1.0, 15)
        wait_until(lambda: gauges(standby).get(("scoreboard_scheduler_jobs_enqueued_total", "warm_board")), 10)
        assert r.ttl("sbsched:ops:scheduler") > 0, "the new leader holds the lock"
    finally:
        for proc in procs:
            proc.stop()
        r.flushdb()
        r.close()
