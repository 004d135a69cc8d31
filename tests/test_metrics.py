"""Metrics and logs of real processes: a gunicorn with two workers and an RQ worker with its
own metrics port, on a Redis index of their own. After a known sequence of requests and
jobs, /metrics reports the right counts, and one request id can be followed from the API
into the job that applied it."""

import ipaddress
import time

import orjson
import pytest
import redis as redis_lib
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR, reset_state


class Group:
    def __init__(self, env):
        self.env = env
        self.worker_port = processes.free_port()
        self.web, self.base = processes.start_web(env, LOG_DIR, workers=2)
        self.worker = processes.start_worker({**env, "METRICS_PORT": str(self.worker_port)}, LOG_DIR)
        self.worker_metrics = f"http://127.0.0.1:{self.worker_port}/metrics"
        processes.wait_http(self.worker_metrics, self.worker)

    def stop(self):
        self.web.stop()
        self.worker.stop()


@pytest.fixture(scope="module")
def group(base_env, spare_redis_index, database_url):
    r = redis_lib.Redis.from_url(spare_redis_index.url)
    r.flushdb()
    reset_state(database_url, r, "sbmetrics:")  # the ranking is rebuilt from PostgreSQL: only our users
    g = Group({**base_env, "REDIS_URL": spare_redis_index.url, "REDIS_PREFIX": "sbmetrics:"})
    yield g
    g.stop()
    r.flushdb()
    r.close()


def scrape(url: str) -> dict:
    """{(name, sorted labels): value} of every sample."""
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    out = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def delta(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def refused_submit(player, body=None, headers=None, auth=True):
    http = player.http if auth else requests
    return http.post(f"{player.base}/api/score/update", json=body, headers=headers or {})


def test_metrics_count_a_known_sequence(group, base_env):
    web = f"{group.base}/metrics"
    before = scrape(web)
    for _ in range(4):
        assert requests.get(f"{group.base}/api/scoreboard").status_code == 200
    for _ in range(2):
        assert requests.get(f"{group.base}/api/nope").status_code == 404

    p = Player(group.base)
    for delta_ in (3, 4, 5):
        assert p.earn(delta_)["state"] == "applied"
    fast = p.submit(p.start("coin_pickup"), 5, wait=10)  # sooner than humanly possible: flagged
    assert fast.status_code == 200 and fast.json()["flagged"] is True

    action = p.start()
    assert refused_submit(p, p.body(action, 1, signature="0" * 64)).json()["error"]["code"] == "bad_signature"
    assert refused_submit(p, p.body(p.start(), 1, signature="1" * 64)).json()["error"]["code"] == "bad_signature"
    assert refused_submit(p, {**p.body(action, 1), "action_token": "x" * 32}).json()["error"]["code"] == \
        "token_unknown"
    assert refused_submit(p, p.body(action, 5000)).json()["error"]["code"] == "invalid_score"
    assert refused_submit(p, p.body(action, 1), auth=False).json()["error"]["code"] == "missing_token"
    assert refused_submit(p, {"score_delta": 1}).json()["error"]["code"] == "invalid_request"

    after = scrape(web)
    http = "scoreboard_http_requests_total"
    assert delta(before, after, http, route="/api/scoreboard", status="200", method="GET") == 4
    assert delta(before, after, http, route="unmatched", status="404") == 2
    assert delta(before, after, http, route="/api/auth/register", status="201") == 1
    assert delta(before, after, http, route="/api/auth/login", status="200") == 1
    assert delta(before, after, http, route="/api/actions", status="201") == 6
    assert delta(before, after, http, route="/api/score/update", status="403") == 3
    assert delta(before, after, "scoreboard_http_request_duration_seconds_count", route="/api/scoreboard") == 4
    assert delta(before, after, "scoreboard_board_reads_total") == 4  # from the cache or not, each counted once
    assert delta(before, after, "scoreboard_http_request_duration_seconds_bucket",
                 route="/api/scoreboard", le="+Inf") == 4
    assert delta(before, after, "scoreboard_submissions_accepted_total") == 4
    refused = {code: delta(before, after, "scoreboard_submissions_refused_total", code=code)
               for code in ("bad_signature", "token_unknown", "invalid_score", "missing_token", "invalid_request")}
    assert refused == {"bad_signature": 2, "token_unknown": 1, "invalid_score": 1, "missing_token": 1,
                       "invalid_request": 1}
    assert delta(before, after, "scoreboard_submissions_refused_total") == 6
    # the two gunicorn workers both write to the shared directory, each told apart by pid
    pids = {dict(lab)["pid"] for (n, lab) in after if n == "scoreboard_db_pool_connections_max"}
    assert len(pids) == 2
    assert value(after, "scoreboard_db_pool_connections_max") == 2 * 2 * 10  # (size + overflow) per worker
    assert value(after, "scoreboard_db_pool_connections_in_use") == 0  # every connection went back

    # figures read from Redis at scrape time
    assert value(after, "scoreboard_redis_up") == 1
    assert value(after, "scoreboard_queue_workers", queue=base_env["QUEUE_NAME"]) == 1
    assert value(after, "scoreboard_queue_depth", queue=base_env["QUEUE_NAME"]) == 0
    assert value(after, "scoreboard_queue_failed_jobs", queue=base_env["QUEUE_NAME"]) == 0
    assert value(after, "scoreboard_submissions_pending") == 0
    assert value(after, "scoreboard_ranking_ready") == 1 and value(after, "scoreboard_ranking_users") == 1
    assert value(after, "scoreboard_redis_memory_used_bytes") > 0
    assert value(after, "scoreboard_redis_memory_limit_bytes") >= value(after, "scoreboard_redis_memory_used_bytes")

    # the worker's own port: a fresh process, so its counts are the sequence's
    worker = scrape(group.worker_metrics)
    assert value(worker, "scoreboard_submissions_applied_total") == 4
    assert value(worker, "scoreboard_submissions_flagged_total") == 1
    assert value(worker, "scoreboard_anomaly_rule_hits_total", rule="too_fast") == 1
    batches = value(worker, "scoreboard_apply_batch_size_count")
    assert batches in range(1, 5) and value(worker, "scoreboard_apply_batch_size_sum") == 4
    assert value(worker, "scoreboard_apply_batches_total", outcome="applied") == batches
    assert value(worker, "scoreboard_apply_batch_duration_seconds_count") == batches
    assert value(worker, "scoreboard_worker_jobs_total", job="apply_batch", outcome="ok") == batches
    assert value(worker, "scoreboard_db_pool_connections_max") == 20
    assert value(worker, "process_cpu_seconds_total") > 0


def log_lines(proc) -> list[dict]:
    lines = [line for line in proc.output().splitlines() if line.strip()]
    return [orjson.loads(line) for line in lines]  # every line is one JSON event


def wait_for_line(proc, match, timeout=10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_lines(proc):
            if match(line):
                return line
        time.sleep(0.1)
    raise AssertionError("no such log line")


def mentions(line: dict, value) -> bool:
    """A field of ``line`` is ``value``, or a list holding it."""
    return any(v == value or (isinstance(v, list) and value in v) for v in line.values())


def test_one_id_finds_the_submission_in_the_web_and_the_worker(group):
    p = Player(group.base)
    trace = f"trace-{time.time_ns()}"
    response = p.http.post(f"{group.base}/api/score/update", json=p.body(p.start("coin_pickup"), 4),
                           headers={"X-Request-ID": trace, "Prefer": "wait=10"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == trace
    submission_id = response.json()["job_id"]  # the API's job id is the submission's id

    accepted = wait_for_line(group.web, lambda l: mentions(l, submission_id))
    assert accepted["message"] == "submission accepted" and accepted["process"] == "web"
    assert accepted["submission_id"] == submission_id and accepted["request_id"] == trace
    assert accepted["user_id"] == str(p.id)  # bound once the access token was verified

    applied = wait_for_line(group.worker, lambda l: l["message"] == "batch applied" and mentions(l, submission_id))
    assert applied["process"] == "worker" and trace in applied["request_ids"]
    assert applied["request_id"] == trace  # the request that opened the batch, from the job's meta
    assert applied["batch_id"] == accepted["batch_id"]
    assert applied["rq_job_id"] == accepted["rq_job_id"] == f"apply-{accepted['batch_id']}"
    job_ok = wait_for_line(group.worker, lambda l: l["logger"] == "rq.worker" and mentions(l, submission_id))
    assert job_ok["rq_job_id"] == applied["rq_job_id"] and trace in job_ok["request_ids"]
    flagged = wait_for_line(group.worker, lambda l: l.get("event") == "submission_flagged"
                            and l.get("submission_id") == submission_id)
    assert flagged["logger"] == "scoreboard.security" and flagged["user_id"] == p.id and flagged["request_id"] == trace
    assert set(flagged["rules"]) == {"too_fast"}
    for line in log_lines(group.web) + log_lines(group.worker):
        assert "job_id" not in line, line  # submission_id or rq_job_id, never the ambiguous name


def test_refusals_are_security_events_with_the_request_id(group):
    p = Player(group.base)
    trace = f"refused-{time.time_ns()}"
    response = p.http.post(f"{group.base}/api/score/update", json=p.body(p.start(), 1, signature="0" * 64),
                           headers={"X-Request-ID": trace})
    assert response.status_code == 403
    event = wait_for_line(group.web, lambda l: l.get("request_id") == trace and l["logger"] == "scoreboard.security")
    assert event["event"] == "request_refused" and event["code"] == "bad_signature"
    assert event["user_id"] == str(p.id) and event["route"] == "/api/score/update" and event["status"] == 403
    for line in log_lines(group.web):
        assert {"ts", "level", "logger", "message"} <= set(line)


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # host order per word
                    found.add(str(ipaddress.ip_address(words)))
    return found


def wait_listening(url: str, proc) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.alive():
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{proc.name} does not serve {url}:\n{proc.output()[-2000:]}")


def assert_token_required(url: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "s3cret"}):
        refused = requests.get(url, headers=headers)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token", url
        assert "scoreboard_" not in refused.text
    ok = requests.get(url, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.headers["Content-Type"].startswith("text/plain"), url
    assert "# TYPE" in ok.text


def test_metrics_can_require_a_token(base_env, spare_redis_index):
    """Every process's metrics, the web's, a worker's and the scheduler's, need the token when
    METRICS_TOKEN is set; a worker's and the scheduler's listen on loopback unless told otherwise."""
    env = {**base_env, "REDIS_URL": spare_redis_index.url, "REDIS_PREFIX": "sbmetrics2:", "METRICS_TOKEN": "s3cret"}
    ports = [processes.free_port(), processes.free_port()]
    web, base = processes.start_web(env, LOG_DIR, workers=1)
    worker = processes.start_worker({**env, "METRICS_PORT": str(ports[0])}, LOG_DIR)
    scheduler = processes.start_scheduler({**env, "METRICS_PORT": str(ports[1])}, LOG_DIR)
    try:
        assert_token_required(f"{base}/metrics")
        assert "scoreboard_http_requests_total" in requests.get(
            f"{base}/metrics", headers={"Authorization": "Bearer s3cret"}).text
        for port, proc in zip(ports, (worker, scheduler)):
            url = f"http://127.0.0.1:{port}/metrics"
            wait_listening(url, proc)
            assert_token_required(url)
            assert listening_addresses(port) == {"127.0.0.1"}, proc.name
    finally:
        for proc in (web, worker, scheduler):
            proc.stop()
