"""The seed's architecture as real processes on one machine: nginx in front of two `web`
and two `stream` instances, three workers, one scheduler, a PostgreSQL primary with a
streaming replica, and Redis. Clients talk to nginx only."""

from __future__ import annotations

import os
import signal
import threading
import time

import psycopg2
import pytest
import redis as redis_lib
import requests

from scoreboard.__main__ import migrate
from tests import invariants, processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.gateway import Gateway
from tests.own_servers import OwnPostgres, OwnRedis
from tests.sse import Stream
from tests.streams import stream_environment
from tests.test_gateway import FromAddress


def personal_jobs(events) -> set[str]:
    return {e.json()["job_id"] for e in events if e.event == "score"}


@pytest.fixture
def topology(base_env):
    primary = OwnPostgres()
    replica = OwnPostgres(primary=primary)
    rs = OwnRedis()
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = primary.url
    migrate()
    os.environ["DATABASE_URL"] = saved
    env = {**base_env, "DATABASE_URL": primary.url, "DATABASE_REPLICA_URLS": replica.url, "REDIS_URL": rs.url,
           "TRUSTED_PROXIES": "1"}
    procs = []
    try:
        webs = [processes.start_web(env, LOG_DIR, workers=1) for _ in range(2)]
        streams = [processes.start_stream(stream_environment(env, STREAM_MAX_PER_USER="10", STREAM_REPLAY_WINDOW="10000"), LOG_DIR)
                   for _ in range(2)]
        procs += [p for p, _ in webs] + [p for p, _ in streams]
        procs += [processes.start_worker(env, LOG_DIR) for _ in range(3)]
        procs.append(processes.start_scheduler(env, LOG_DIR))
        gw = Gateway([int(b.rsplit(":", 1)[1]) for _, b in webs], [int(b.rsplit(":", 1)[1]) for _, b in streams])
        yield {"gw": gw, "webs": webs, "streams": streams, "env": env, "primary": primary, "redis": rs}
        gw.close()
    finally:
        for proc in procs:
            proc.stop()
        rs.close()
        replica.close()
        primary.close()


def test_submissions_reach_viewers_everywhere_and_survive_instance_deaths(topology):
    gw, webs, streams = topology["gw"], topology["webs"], topology["streams"]
    players = [Player(gw.base) for _ in range(4)]
    viewers = {p.id: Stream(gw.base, p.tokens["access_token"], via="query") for p in players}
    for v in viewers.values():
        assert v.status == 200, getattr(v, "body", None)
        assert v.next().retry and v.next().event == "scoreboard"
    placed = [requests.get(base + "/readyz").json()["viewers"] for _, base in streams]
    assert sorted(placed) == [2, 2], placed  # least connections over both stream instances

    # one submission through one web instance reaches the viewers on both stream instances
    job = players[0].earn(5)["job_id"]
    for v in viewers.values():
        v.until(lambda e: e.event == "scoreboard" and any(x["score"] == 5 for x in e.json()["entries"]))
    own = viewers[players[0].id]
    if job not in personal_jobs(own.seen):
        own.until(lambda e: e.event == "score" and e.json()["job_id"] == job)

    # from here on each player is a client of its own address, as players are: the gateway
    # limits the request rate per address
    for number, p in enumerate(players):
        p.http.mount("http://", FromAddress(f"127.0.1.{number + 1}"))
    accepted: dict[int, set[str]] = {p.id: {job} if p is players[0] else set() for p in players}
    tokens: set[str] = set()  # answered 202
    attempted: set[str] = set()  # every token posted, answered or not
    stop = threading.Event()

    def client(p: Player):
        while not stop.is_set():
            try:  # an instance may die under a request: nginx answers 503, the client goes on
                started = p.http.post(f"{gw.base}/api/actions", json={"action_type": "tap"})
                if started.status_code != 201:
                    assert started.status_code == 503, started.text
                    continue
                action = started.json()
                attempted.add(action["action_token"])
                resp = p.submit(action, 2)
            except requests.RequestException:
                continue
            if resp.status_code == 202:
                accepted[p.id].add(resp.json()["job_id"])
                tokens.add(action["action_token"])
            else:
                assert resp.status_code == 503, resp.text  # an instance died under the request
            time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(p,)) for p in players]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        webs[0][0].kill(signal.SIGKILL)
        streams[0][0].kill(signal.SIGKILL)
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)

    # viewers cut off reconnect through nginx with their Last-Event-ID and miss nothing
    for p in players:
        old = viewers[p.id]
        if not old.ended.wait(0.5):
            continue
        last = next((e.id for e in reversed(old.seen) if e.id), None)
        viewers[p.id] = Stream(gw.base, p.tokens["access_token"], via="query", last_event_id=last)
        viewers[p.id].seen[:0] = old.seen
        assert viewers[p.id].status == 200
    client = redis_lib.Redis.from_url(topology["redis"].url)
    prefix = topology["env"]["REDIS_PREFIX"]
    invariants.wait_until_settled(client, prefix, timeout=90)
    for p in players:
        v = viewers[p.id]
        deadline = time.monotonic() + 20
        while not accepted[p.id] <= personal_jobs(v.seen) and time.monotonic() < deadline:
            try:
                v.next(timeout=0.5)
            except AssertionError:
                pass
        assert accepted[p.id] <= personal_jobs(v.seen), (
            f"{len(accepted[p.id] - personal_jobs(v.seen))} of {len(accepted[p.id])} missed;"
            f" ended={v.ended.is_set()} events={[(e.event, e.id) for e in v.seen if e.event != ':'][:12]}")
        v.close()
    own = psycopg2.connect(topology["primary"].url)
    own.autocommit = True
    invariants.check(own, client, prefix)
    with own.cursor() as cur:
        cur.execute("SELECT token FROM action_tokens")
        applied = {row[0] for row in cur.fetchall()}
    # every 202 was applied; a request cut off with its instance may have been applied too
    # (its client heard 503 and can look the job up), but nothing that was never posted
    assert tokens <= applied
    assert len((applied - tokens) - attempted) == 1  # the first submission, earned before the load
    own.close()
