"""A period's end with the real processes (gunicorn web, RQ workers, the scheduler): a
worker stopped across it, the scheduler and a worker killed at it, and a revert after the
close. Each test starts a stack of its own whose round ends a few seconds later."""

import signal
import threading
import time
from datetime import datetime, timezone

import psycopg2
import pytest
import requests

from tests import invariants, processes
from tests.boundary import BOARD, RoundStack, start_round_stack
from tests.client import Player, wait_applied
from tests.sse import Stream
from tests.test_admin import flagged_submission, make_admin

pytestmark = pytest.mark.slow  # starts processes of its own, waits for a period's end


@pytest.fixture
def round_stack(base_env, spare_redis_index, database_url):
    """Starts a stack of its own with a round ending soon (keywords: more environment of
    its processes); stopped after the test."""
    started = []

    def start(**env) -> RoundStack:
        started.append(start_round_stack(base_env, spare_redis_index.url, database_url, **env))
        return started[-1]

    yield start
    for stack in started:
        stack.stop()
        stack.r.flushdb()
        stack.r.close()


def entries(body: dict) -> list[tuple]:
    return [(e["user_id"], e["rank"], e["score"]) for e in body["entries"]]


def earned(player: Player, points: int) -> dict:
    """Submit ``points`` and wait until they are applied; the applied result."""
    resp = player.submit(player.start(), points, wait=10)
    assert resp.status_code in (200, 202), resp.text
    return resp.json() if resp.status_code == 200 else wait_applied(player, resp.json()["job_id"])["result"]


def test_a_worker_stopped_across_the_end_closes_the_period_once_it_applied_the_late_submission(round_stack, db,
                                                                                               database_url):
    stack = round_stack(APPLY_JOB_TIMEOUT=60)  # the stopped worker's job is not taken for abandoned
    old, new = stack.ending.key, stack.following.key
    late, early, other = Player(stack.base), Player(stack.base), Player(stack.base)
    viewer = Stream(stack.base, early.tokens["access_token"], query={"board": BOARD})
    assert viewer.until(lambda e: e.event == "scoreboard").json()["period"] == old
    for player, points in ((early, 5), (other, 3)):
        assert earned(player, points)["boards"][BOARD]["period"] == old

    # the late player's batch: its worker is caught in the transaction, then stopped
    blocker = psycopg2.connect(database_url)
    with blocker.cursor() as cur:
        cur.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (late.id,))
    job_id = late.submit(late.start(), 10).json()["job_id"]
    stopped = processes.worker_of_started_job(stack.workers, stack.r, stack.env["QUEUE_NAME"], waiting_on_lock=db)
    stopped.kill(signal.SIGSTOP)
    blocker.rollback()  # the stopped worker now holds the row, in a transaction that waits
    blocker.close()
    try:
        assert datetime.now(timezone.utc) < stack.boundary, "the submission was accepted before the end"
        stack.wait_for_boundary()
        assert earned(other, 4)["boards"][BOARD]["period"] == new  # the running worker applies it

        # the closer ran after the end and waits for the stopped batch
        deadline = time.monotonic() + 20
        while not ((report := stack.close_report()) and report["at"] > stack.boundary.timestamp()
                   and f"{BOARD}/{old}" in report["waiting"]):
            assert time.monotonic() < deadline, f"no run of close_periods waited for the period: {report}"
            time.sleep(0.2)
        closing = stack.period(old)
        assert closing["period"]["state"] == "closing" and entries(closing) == [(early.id, 1, 5), (other.id, 2, 3)]
        assert not [e for e in viewer.received() if e.event == "period_closed"]
    finally:
        stopped.kill(signal.SIGCONT)

    result = wait_applied(late, job_id)["result"]
    assert result["boards"][BOARD] == {"period": old, "score": 10, "rank": 1, "previous_rank": None}
    final = stack.wait_state(old, "final")
    assert final["period"]["revised_at"] is None and final["total"] == 3
    assert entries(final) == [(late.id, 1, 10), (early.id, 2, 5), (other.id, 3, 3)]
    assert entries(stack.period(new)) == [(other.id, 1, 4)], "the late submission is not in the new round"

    # the final period's pages, and the list of closed periods with its winner
    first = stack.period(old, limit=2)
    second = stack.period(old, limit=2, cursor=first["next_cursor"])
    assert entries(first) + entries(second) == entries(final) and second["next_cursor"] is None
    periods = requests.get(f"{stack.base}/api/boards/{BOARD}/periods", timeout=10).json()["periods"]
    assert [(p["key"], p["state"], p["winner"]) for p in periods] == [
        (old, "final", {"user_id": late.id, "username": late.username, "score": 10})]

    # the board's viewers: the final standings, then the new round's board
    closed = viewer.until(lambda e: e.event == "period_closed", timeout=20).json()
    assert closed["board"] == BOARD and closed["period"] == old
    assert [(e["user_id"], e["rank"], e["score"]) for e in closed["entries"]] == entries(final)
    assert closed["next_period"] == {"key": new, "starts_at": stack.following.starts_at_ms,
                                     "ends_at": stack.following.ends_at_ms}
    after = viewer.next()
    assert after.event == "scoreboard" and after.json()["period"] == new
    assert entries(after.json()) == [(other.id, 1, 4)]
    viewer.close()
    invariants.check(db, stack.r, stack.keys.prefix)


def test_the_scheduler_and_a_worker_killed_at_the_end_close_the_period_once_and_lose_nothing(round_stack, db):
    stack = round_stack(lead_s=10, min_ahead_s=2)
    stack.start_scheduler()  # on standby: takes over when the leader dies
    old, new = stack.ending.key, stack.following.key
    players = [Player(stack.base) for _ in range(6)]
    viewer = Stream(stack.base, players[0].tokens["access_token"], query={"board": BOARD})
    assert viewer.until(lambda e: e.event == "scoreboard").json()["period"] == old
    accepted, errors, stop = set(), [], threading.Event()

    def client(player: Player, points: int) -> None:
        while not stop.is_set():
            action = player.start()
            resp = player.submit(action, points)
            if resp.status_code == 202:
                accepted.add(action["action_token"])
            else:
                errors.append(resp.text)

    threads = [threading.Thread(target=client, args=(p, 1 + i)) for i, p in enumerate(players)]
    for t in threads:
        t.start()
    try:
        stack.wait_for_boundary()
        leader = stack.leading_scheduler()
        try:  # a worker applying a batch, if one is
            victim = processes.worker_of_started_job(stack.workers, stack.r, stack.env["QUEUE_NAME"], timeout=0.5)
        except AssertionError:
            victim = stack.workers[0]
        for proc in (leader, victim):
            proc.kill(signal.SIGKILL)
            proc.proc.wait(10)
        stack.start_worker()  # as a supervisor would
        time.sleep(2)  # submissions keep coming after the end
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == [] and accepted

    final = stack.wait_state(old, "final", timeout=60)
    invariants.wait_until_settled(stack.r, stack.keys.prefix, timeout=60)
    invariants.check(db, stack.r, stack.keys.prefix, accepted)
    with db.cursor() as cur:  # each side of the end: the history by when it was accepted
        cur.execute("SELECT user_id, sum(score_change) FILTER (WHERE accepted_at < %s),"
                    " sum(score_change) FILTER (WHERE accepted_at >= %s) FROM score_history GROUP BY user_id",
                    (stack.boundary, stack.boundary))
        sides = cur.fetchall()
        cur.execute("SELECT closed_at FROM board_periods WHERE board = %s AND key = %s", (BOARD, old))
        [(closed_at,)] = cur.fetchall()
    before = {uid: points for uid, points, _ in sides if points}
    assert {(uid, score) for uid, _, score in entries(final)} == set(before.items())
    assert [rank for _, rank, _ in entries(final)] == competition_ranks(sorted(before.values(), reverse=True))
    settled = requests.get(f"{stack.base}/api/boards/{BOARD}", params={"period": new, "limit": 100}, timeout=10).json()
    assert {(uid, score) for uid, _, score in entries(settled)} == {(uid, p) for uid, _, p in sides if p}

    # later runs of the closer change nothing: one close, one announcement
    closed_ts = closed_at.timestamp()
    deadline = time.monotonic() + 20
    while not ((report := stack.close_report()) and report["at"] > closed_ts + 1):
        assert time.monotonic() < deadline, "the closer did not run again"
        time.sleep(0.2)
    time.sleep(0.5)  # what that run would have announced reaches the viewer
    with db.cursor() as cur:
        cur.execute("SELECT closed_at FROM board_periods WHERE board = %s AND key = %s", (BOARD, old))
        assert cur.fetchone()[0] == closed_at
    closes = [e.json() for e in viewer.received() if e.event == "period_closed"]
    assert [c["period"] for c in closes] == [old]
    assert [(e["user_id"], e["rank"], e["score"]) for e in closes[0]["entries"]] == entries(final)[:10]
    viewer.close()


def test_a_revert_after_the_close_corrects_the_final_standings_and_stamps_revised_at(round_stack, db):
    stack = round_stack(lead_s=10, min_ahead_s=3)
    old = stack.ending.key
    admin, cheat, honest = make_admin(stack.base, db), Player(stack.base), Player(stack.base)
    assert flagged_submission(cheat, 8)["boards"][BOARD]["period"] == old  # too fast: flagged, applied
    assert earned(honest, 5)["boards"][BOARD]["period"] == old
    stack.wait_for_boundary()
    final = stack.wait_state(old, "final")
    assert entries(final) == [(cheat.id, 1, 8), (honest.id, 2, 5)] and final["period"]["revised_at"] is None

    [flag] = admin.http.get(f"{stack.base}/api/admin/flags").json()["flags"]
    assert {"board": BOARD, "period": old} in flag["boards"]
    resolved = admin.http.post(f"{stack.base}/api/admin/flags/{flag['id']}/resolve", json={"decision": "revert"})
    assert resolved.status_code == 200, resolved.text
    revised = stack.period(old)
    assert revised["period"]["state"] == "final" and revised["period"]["revised_at"] is not None
    assert revised["period"]["revised_at"] > revised["period"]["ends_at"]
    assert entries(revised) == [(honest.id, 1, 5), (cheat.id, 2, 0)]
    lookup = requests.get(f"{stack.base}/api/boards/{BOARD}/users/{cheat.id}", params={"period": old}, timeout=10)
    assert (lookup.json()["rank"], lookup.json()["score"]) == (2, 0)
    periods = requests.get(f"{stack.base}/api/boards/{BOARD}/periods", timeout=10).json()["periods"]
    assert [(p["key"], p["revised_at"], p["winner"]["user_id"]) for p in periods] == [
        (old, revised["period"]["revised_at"], honest.id)]
    invariants.check(db, stack.r, stack.keys.prefix)


def competition_ranks(scores: list[int]) -> list[int]:
    """The competition ranks of scores in descending order (1, 2, 2, 4)."""
    return [1 + sum(other > score for other in scores) for score in scores]
