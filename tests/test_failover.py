"""Lose a machine, lose nothing: the Redis primary killed (-9) under load and Sentinel
promoting its replica, then the PostgreSQL primary stopped and its synchronous replica
promoted, with the service's real processes running throughout and never restarted.

The servers are the test's own, on free ports, stopped by their PIDs: a Redis primary with
append-only persistence, its replica, three Sentinels; a PostgreSQL primary and its
synchronous streaming replica. The processes: two web, one stream, two workers and the
scheduler, configured with ``REDIS_SENTINELS`` (a ``REDIS_URL`` pointing elsewhere, which
the Sentinels must win over), ``REDIS_MIN_REPLICA_ACKS=1`` and a two-host ``DATABASE_URL``
with ``target_session_attrs=read-write``.

``REDIS_MIN_REPLICA_ACKS=1`` needs a replica: once Sentinel has promoted the old replica,
the killed Redis is started again as the new primary's replica (its machine back, as the
runbook in docs/operations.md starts it). Until then nothing can be confirmed: action tokens
and submissions are answered 503 (a submission with its ``job_id``).

The clients behave as the contract asks: on 503 they wait ``Retry-After`` and try again
with the same token; a 503 that carries a ``job_id`` is looked up before submitting again.
So every one of the 1,000 submissions ends accepted, and each must be applied exactly once.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg2
import pytest
import requests
from rq.registry import FailedJobRegistry

from scoreboard.__main__ import migrate
from tests import invariants, processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.own_servers import OwnPostgres, OwnRedis, OwnSentinel
from tests.sse import EventSource
from tests.streams import stream_environment

MASTER = "scoreboard"
SUBMISSIONS = 1000
RATE = 20.0  # submissions per second, due on a fixed schedule whatever the answers
PLAYERS = 12
REDIS_KILL_AT_S = 12.0  # after the first submission
POSTGRES_STOP_AT_S = 32.0
POSTGRES_DETECTED_S = 1.0  # between the primary's stop and the promotion (what a watchdog takes)
BACK_WITHIN_S = 10.0
ANSWER_TIMEOUT_S = 10.0  # no answer may take longer: never a hang


@dataclass
class Answer:
    what: str  # "action", "submit", "lookup"
    sent_at: float
    answered_at: float
    status: int  # 0: no answer within ANSWER_TIMEOUT_S (or the connection failed)
    code: str = ""
    job_id: str = ""
    retry_after: str | None = None


@dataclass
class Outcome:
    token: str
    player: Player
    job_id: str = ""  # "" when an attempt whose answer was lost accepted it (token_used later)
    how: str = ""  # 202, confirmed (a 503 with job_id, found by the lookup), used (token_used after a 503)


@dataclass
class Load:
    """The clients: each submission due at ``start + i / RATE``, retried as the contract says."""

    players: list[Player]
    bases: list[str]
    answers: list[Answer] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    start: float = 0.0

    def call(self, what: str, method: str, url: str, player: Player, **kw) -> tuple[Answer, dict]:
        sent = time.monotonic()
        headers = {"Authorization": f"Bearer {player.tokens['access_token']}"}
        try:
            resp = requests.request(method, url, headers=headers, timeout=ANSWER_TIMEOUT_S, **kw)
        except requests.RequestException:
            answer = Answer(what, sent, time.monotonic(), 0)
            self.answers.append(answer)
            return answer, {}
        body = resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") else {}
        error = body.get("error", {}) if isinstance(body, dict) else {}
        answer = Answer(what, sent, time.monotonic(), resp.status_code, error.get("code", ""),
                        error.get("job_id", "") or body.get("job_id", ""), resp.headers.get("Retry-After"))
        self.answers.append(answer)
        return answer, body

    def pause(self, answer: Answer) -> None:
        time.sleep(float(answer.retry_after or 1))

    def one(self, i: int) -> None:
        time.sleep(max(0.0, self.start + i / RATE - time.monotonic()))
        player, base = self.players[i % len(self.players)], self.bases[i % len(self.bases)]
        while True:  # an action token (a 503 means: none was handed out, ask again)
            answer, action = self.call("action", "POST", f"{base}/api/actions", player, json={"action_type": "tap"})
            if answer.status == 201:
                break
            self.pause(answer)
        outcome = Outcome(action["action_token"], player)
        while not outcome.how:
            answer, _ = self.call("submit", "POST", f"{base}/api/score/update", player,
                                  json=player.body(action, 1 + i % 7))
            if answer.status in (200, 202):
                outcome.job_id, outcome.how = answer.job_id, "202"
            elif answer.status == 403 and answer.code == "token_used":
                outcome.how = "used"  # an earlier attempt was accepted, its answer lost
            elif answer.status == 503 and answer.job_id:
                outcome.job_id = answer.job_id
                while True:  # accepted but not confirmed: look it up before submitting again
                    self.pause(answer)
                    answer, _ = self.call("lookup", "GET", f"{base}/api/score/jobs/{outcome.job_id}", player)
                    if answer.status == 200:
                        outcome.how = "confirmed"
                        break
                    if answer.status == 404:  # lost with the primary: submit again
                        outcome.job_id = ""
                        break
            elif answer.status in (0, 503):
                self.pause(answer)
            else:
                break  # anything else fails the test below
        self.outcomes.append(outcome)

    def run(self) -> None:
        self.start = time.monotonic()
        with ThreadPoolExecutor(64) as pool:
            for future in [pool.submit(self.one, i) for i in range(SUBMISSIONS)]:
                future.result()


@pytest.fixture
def machines():
    """The servers of two (or three) machines, each on its own port."""
    owned = []
    try:
        pg_primary = OwnPostgres()
        owned.append(pg_primary)
        saved = os.environ["DATABASE_URL"]
        os.environ["DATABASE_URL"] = pg_primary.url
        migrate()
        os.environ["DATABASE_URL"] = saved
        pg_replica = OwnPostgres(primary=pg_primary)
        owned.append(pg_replica)
        pg_primary.synchronous(pg_replica)
        redis_primary = OwnRedis()
        owned.append(redis_primary)
        redis_replica = OwnRedis(replica_of=redis_primary)
        owned.append(redis_replica)
        sentinels = [OwnSentinel(redis_primary, MASTER) for _ in range(3)]
        owned += sentinels
        deadline = time.monotonic() + 30
        while not all(s.master()["num-other-sentinels"] == "2" and s.master()["num-slaves"] == "1" for s in sentinels):
            assert time.monotonic() < deadline, [s.master() for s in sentinels]
            time.sleep(0.2)
        yield pg_primary, pg_replica, redis_primary, redis_replica, sentinels
    finally:
        for server in reversed(owned):
            server.close()


@pytest.mark.slow
def test_a_lost_redis_primary_and_a_lost_postgresql_primary_lose_nothing(machines, base_env, r):
    pg_primary, pg_replica, redis_primary, redis_replica, sentinels = machines
    prefix = f"sbfail{secrets.token_hex(3)}:"
    env = {**base_env,
           # the Sentinels win over REDIS_URL (the session's shared Redis), which lends its database number
           "REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in sentinels),
           "REDIS_SENTINEL_MASTER": MASTER,
           "REDIS_MIN_REPLICA_ACKS": "1",
           "REDIS_PREFIX": prefix,
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{pg_primary.port},127.0.0.1:{pg_replica.port}/postgres"
                           "?target_session_attrs=read-write",
           "APPLY_JOB_TIMEOUT": "30"}
    stream_env = stream_environment(env, STREAM_REPLAY_WINDOW="10000", STREAM_MAX_PER_USER="5")
    starters = [lambda: processes.start_web(env, LOG_DIR, workers=1), lambda: processes.start_web(env, LOG_DIR, workers=1),
                lambda: processes.start_stream(stream_env, LOG_DIR),
                lambda: processes.start_worker(env, LOG_DIR), lambda: processes.start_worker(env, LOG_DIR),
                lambda: processes.start_scheduler(env, LOG_DIR)]
    with ThreadPoolExecutor(len(starters)) as pool:
        started = [f.result() for f in [pool.submit(start) for start in starters]]
    (web1, base1), (web2, base2), (stream, stream_base) = started[:3]
    procs = [web1, web2, stream, *started[3:]]
    pids = [p.pid for p in procs]
    viewers: dict[int, EventSource] = {}
    try:
        players = [Player(base1) for _ in range(PLAYERS)]
        viewers = {p.id: EventSource(stream_base, p.tokens["access_token"]) for p in players}
        deadline = time.monotonic() + 20
        while not all(v.events("scoreboard") for v in viewers.values()):
            assert time.monotonic() < deadline, "a viewer got no board"
            time.sleep(0.1)

        load = Load(players, [base1, base2])
        clients = threading.Thread(target=load.run)
        clients.start()
        while not load.start:
            time.sleep(0.01)

        # the Redis primary's machine goes: Sentinel promotes the replica
        time.sleep(max(0.0, load.start + REDIS_KILL_AT_S - time.monotonic()))
        redis_lost = time.monotonic()  # before the signal: answers to requests in flight may come at once
        redis_primary.kill()
        while any(s.primary_port() != redis_replica.port for s in sentinels):
            assert time.monotonic() < redis_lost + 30, "Sentinel did not promote the replica"
            time.sleep(0.05)
        redis_promoted = time.monotonic()
        # its machine back, the lost Redis is started as a replica of the primary Sentinel names
        # (as a start script that asks Sentinel first does; Sentinel alone would take up to 10 s)
        redis_primary.replica_of = redis_replica
        redis_primary.start()
        while redis_replica.client().info("replication")["connected_slaves"] < 1:
            assert time.monotonic() < redis_promoted + 30, "the lost Redis did not come back as a replica"
            time.sleep(0.05)
        redis_replica_back = time.monotonic()

        # the PostgreSQL primary's machine goes: its synchronous replica is promoted
        time.sleep(max(0.0, load.start + POSTGRES_STOP_AT_S - time.monotonic()))
        pg_lost = time.monotonic()
        pg_primary.stop(signal.SIGQUIT)  # immediate shutdown: no checkpoint, clients cut off
        time.sleep(POSTGRES_DETECTED_S)
        pg_replica.promote()
        pg_promoted = time.monotonic()

        clients.join(SUBMISSIONS / RATE + 120)
        assert not clients.is_alive(), "the clients did not finish"
        client = processes.redis_of(env)
        invariants.wait_until_settled(client, prefix, timeout=90)

        # never a 500, never a hang: 503 with Retry-After, and only while a primary was missing
        odd = [a for a in load.answers if a.status not in (200, 201, 202, 404, 503)
               and not (a.status == 403 and a.code == "token_used")]
        assert odd == [], odd[:5]
        unavailable = [a for a in load.answers if a.status == 503]
        assert all(a.retry_after for a in unavailable)
        assert all(a.answered_at - a.sent_at <= ANSWER_TIMEOUT_S for a in load.answers)
        late = [a for a in unavailable if a.answered_at < redis_lost or a.sent_at > redis_promoted + BACK_WITHIN_S]
        assert late == [], [(round(a.sent_at - load.start, 2), a.what, a.code) for a in late[:5]]
        assert unavailable, "the Redis primary's loss went unnoticed"

        # every submission accepted once (202, or looked up, or refused as used by its own
        # earlier attempt), and applied exactly once
        assert len(load.outcomes) == SUBMISSIONS and all(o.how for o in load.outcomes)
        own = psycopg2.connect(pg_replica.url)
        own.autocommit = True
        invariants.check(own, client, prefix, {o.token for o in load.outcomes})
        own.close()
        for queue in (env["QUEUE_NAME"], env["MAINTENANCE_QUEUE_NAME"]):
            assert FailedJobRegistry(queue, connection=client).count == 0, queue

        # every viewer got the board again after each promotion, and each of its own events
        for p in players:
            viewer = viewers[p.id]
            own_jobs = {o.job_id for o in load.outcomes if o.player is p and o.job_id}
            deadline = time.monotonic() + 20
            while not own_jobs <= {e.json()["job_id"] for e in viewer.events("score")}:
                assert time.monotonic() < deadline, (
                    f"viewer {p.id} missed {len(own_jobs - {e.json()['job_id'] for e in viewer.events('score')})}"
                    f" of {len(own_jobs)}; connections {viewer.connections}")
                time.sleep(0.2)
            assert viewer.events("scoreboard", after=redis_promoted) and viewer.events("scoreboard", after=pg_promoted)

        # no process was restarted; the shared Redis of REDIS_URL saw none of it
        assert [p.pid for p in procs] == pids and all(p.alive() for p in procs)
        assert not list(r.scan_iter(match=f"{prefix}*", count=1000))

        redis_down = max(a.answered_at for a in unavailable) - redis_lost
        applies = sorted(e.at for v in viewers.values() for e in v.events("score", after=pg_lost))
        resumed = next(t for t in applies if t > pg_promoted)
        assert resumed - pg_promoted <= BACK_WITHIN_S
        print(f"\nRedis: primary killed at +{redis_lost - load.start:.1f} s, replica promoted after "
              f"{redis_promoted - redis_lost:.1f} s, a replica again after {redis_replica_back - redis_lost:.1f} s;"
              f" submissions unavailable for {redis_down:.1f} s "
              f"({len(unavailable)} answers 503, {sum(1 for a in unavailable if a.job_id)} of them with a job_id)")
        print(f"PostgreSQL: primary stopped at +{pg_lost - load.start:.1f} s, replica promoted after "
              f"{pg_promoted - pg_lost:.1f} s; no submission applied for {resumed - pg_lost:.1f} s "
              f"(applies resumed {resumed - pg_promoted:.1f} s after the promotion); submissions accepted throughout")
        print("outcomes: " + ", ".join(f"{how} {sum(1 for o in load.outcomes if o.how == how)}"
                                       for how in ("202", "confirmed", "used")))
    finally:
        for viewer in viewers.values():
            viewer.close()
        for proc in procs:
            proc.stop()
