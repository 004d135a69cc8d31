"""The contract's "Live stream", bullet by bullet, against a real stream process (gunicorn,
gevent) whose DATABASE_URL points where nothing listens: it works from Redis alone."""

from __future__ import annotations

import time

import pytest
import requests

from scoreboard.redis_client import Keys
from tests.client import Player, first_places
from tests.sse import Stream
from tests.streams import live, mint_token, stream_env, stream_server  # noqa: F401 (fixtures)


def board(api) -> dict:
    return requests.get(f"{api}/api/scoreboard").json()


def open_stream(stream_server, player: Player, **kw) -> Stream:
    """Open a stream; a stream closed just before may hold its place in the per-user cap
    for a moment (the server releases closed streams in batches), so 429 is retried."""
    deadline = time.monotonic() + 5
    while True:
        s = Stream(stream_server.base, player.tokens["access_token"], **kw)
        if s.status != 429 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert s.status == 200, s.body
    return s


# ---------------------------------------------------------------- first events


def test_first_retry_then_the_current_board(live, stream_server):
    a, b = Player(live), Player(live)
    a.earn(5)
    b.earn(9)
    s = open_stream(stream_server, a)
    try:
        assert s.headers["Content-Type"].startswith("text/event-stream")
        first = s.next()
        assert first.retry and first.retry > 0 and first.data == ""
        shown = s.next()
        assert shown.event == "scoreboard"
        body = shown.json()
        assert body["entries"] == board(live)["entries"]
        assert [(e["username"], e["rank"], e["score"]) for e in body["entries"]] == [
            (b.username, 1, 9), (a.username, 2, 5)]
        assert shown.id == str(body["version"])
    finally:
        s.close()


def test_empty_board_is_sent_too(live, stream_server):
    s = open_stream(stream_server, Player(live))
    try:
        s.next()
        shown = s.next()
        assert shown.event == "scoreboard" and shown.json()["entries"] == []
    finally:
        s.close()


@pytest.mark.parametrize("via", ["header", "query", "cookie"])
def test_token_by_header_query_or_cookie(live, stream_server, via):
    p = Player(live)
    s = open_stream(stream_server, p, via=via)
    try:
        assert s.next().retry
        assert s.next().event == "scoreboard"
    finally:
        s.close()


def test_refused_with_a_token_that_is_not_valid(live, stream_server, settings):
    """A token that is present but not valid is refused (without any token the viewer is
    anonymous: tests/test_stream_access.py)."""
    p = Player(live)
    cases = [
        ("not-a-jwt", "invalid_token"),
        (mint_token(settings, p.id, expires_in=-5), "token_expired"),
        (p.tokens["refresh_token"], "invalid_token"),
        (mint_token(settings, p.id) + "x", "invalid_token"),
    ]
    for token, code in cases:
        s = Stream(stream_server.base, token)
        assert s.status == 401, (token, s.body)
        assert s.body["error"]["code"] == code
    r = requests.get(f"{stream_server.base}/api/scoreboard/stream", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
    token = p.tokens["access_token"]
    assert p.http.post(f"{live}/api/auth/logout").status_code == 200
    s = Stream(stream_server.base, token, via="query")
    assert s.status == 401 and s.body["error"]["code"] == "token_revoked"


def test_undeclared_query_parameters_are_refused(live, stream_server):
    p = Player(live)
    for base in (stream_server.base, live):
        resp = requests.get(f"{base}/api/scoreboard/stream?surprise=1&last_event_id=1", timeout=10,
                            headers={"Authorization": f"Bearer {p.tokens['access_token']}"})
        assert resp.status_code == 422, base
        assert resp.json()["error"] == {"code": "invalid_request", "message": "The query does not match the schema.",
                                        "fields": {"surprise": ["Unknown field."]}}


def test_the_api_process_serves_the_stream_too(live):
    p = Player(live)
    p.earn(4)
    s = Stream(live, p.tokens["access_token"])
    try:
        assert s.status == 200
        assert s.next().retry
        assert s.next().json()["entries"][0]["score"] == 4
    finally:
        s.close()
    doc = requests.get(f"{live}/api/openapi.json").json()
    assert "/api/scoreboard/stream" in doc["paths"]


# ---------------------------------------------------------------- board events


def test_board_event_when_the_top_10_changes(live, stream_server):
    watcher, player = Player(live), Player(live)
    s = open_stream(stream_server, watcher)
    try:
        s.next(), s.next()
        player.earn(7)
        shown = s.until(lambda e: e.event == "scoreboard")
        body = shown.json()
        assert [(e["username"], e["score"]) for e in body["entries"]] == [(player.username, 7)]
        assert shown.id == str(body["version"])
        assert body == board(live) or body["version"] <= board(live)["version"]
    finally:
        s.close()


def test_board_events_coalesce_latest_wins(live, stream_server, r, settings):
    from tests.streams import Publisher, board_entries

    publisher = Publisher(r, settings)
    s = open_stream(stream_server, Player(live))
    try:
        s.next(), s.next()
        versions = [publisher.publish(board_entries([100 + i])) for i in range(60)]
        shown = s.until(lambda e: e.event == "scoreboard" and int(e.id) == versions[-1])
        assert shown.json()["entries"][0]["score"] == 159
        boards = [e for e in s.seen if e.event == "scoreboard"][1:]
        assert len(boards) < 20, "60 changes within a few board intervals must coalesce"
        ids = [int(e.id) for e in boards]
        assert ids == sorted(set(ids))
    finally:
        s.close()


# ---------------------------------------------------------------- personal events


def test_score_event_for_own_submissions_only(live, stream_server):
    me, other = Player(live), Player(live)
    mine, theirs = open_stream(stream_server, me), open_stream(stream_server, other)
    try:
        for s in (mine, theirs):
            s.next(), s.next()
        result = me.earn(6)
        event = mine.until(lambda e: e.event == "score")
        assert event.json() == {"job_id": result["job_id"], "score": 6, "rank": 1, "score_delta": 6, "flagged": False,
                                "boards": first_places(6)}
        version, _, k = event.id.partition("-")
        assert version.isdigit() and k.isdigit()
        theirs.until(lambda e: e.event == "scoreboard")
        other.earn(1)
        theirs.until(lambda e: e.event == "score")
        assert not [e for e in theirs.seen if e.event == "score" and e.json()["job_id"] == result["job_id"]]
    finally:
        mine.close(), theirs.close()


def test_rejected_event_when_a_worker_refuses(live, stream_server, db):
    p = Player(live)
    s = open_stream(stream_server, p)
    try:
        s.next(), s.next()
        with db.cursor() as cur:  # banned in PostgreSQL only: the web accepts, the worker refuses
            cur.execute("UPDATE users SET banned = true WHERE id = %s", (p.id,))
        r = p.submit(p.start(), 3)
        assert r.status_code in (200, 202), r.text
        event = s.until(lambda e: e.event == "rejected")
        assert event.json() == {"job_id": r.json()["job_id"],
                                "error": {"code": "user_banned", "message": "This account is banned."}}
    finally:
        s.close()


def test_missed_personal_events_are_replayed_after_last_event_id(live, stream_server):
    p = Player(live)
    s = open_stream(stream_server, p)
    s.next(), s.next()
    p.earn(1)
    last = s.until(lambda e: e.event == "score").id
    s.close()
    missed = [p.earn(2)["job_id"], p.earn(3)["job_id"]]
    again = open_stream(stream_server, p, last_event_id=last)
    try:
        assert again.next().retry
        assert again.next().event == "scoreboard"
        replayed = [again.next(), again.next()]
        assert [e.event for e in replayed] == ["score", "score"]
        assert [e.json()["job_id"] for e in replayed] == missed
        assert [e.json()["score"] for e in replayed] == [3, 6]
        ids = [tuple(map(int, i.split("-"))) for i in (last, replayed[0].id, replayed[1].id)]
        assert ids == sorted(set(ids))
    finally:
        again.close()


def test_replay_after_a_board_id_and_by_query_parameter(live, stream_server):
    p = Player(live)
    s = open_stream(stream_server, p)
    s.next()
    board_id = s.next().id
    s.close()
    job = p.earn(4)["job_id"]
    again = open_stream(stream_server, p, via="query", query={"last_event_id": board_id})
    try:
        again.next(), again.next()
        assert again.next().json()["job_id"] == job
    finally:
        again.close()


def test_a_malformed_last_event_id_opens_a_fresh_stream(live, stream_server):
    """An id the server never gave (here "²", a digit to ``str.isdigit`` that ``int``
    refuses: it was a 500) counts as none: the stream starts with the current board."""
    p = Player(live)
    for kw in ({"last_event_id": "\xb2"}, {"last_event_id": "1-\xb2"}, {"last_event_id": "garbage"},
               {"via": "query", "query": {"last_event_id": "\xb2"}}):
        s = open_stream(stream_server, p, **kw)
        try:
            assert s.next().retry
            assert s.next().event == "scoreboard", kw
        finally:
            s.close()


def test_resync_when_the_gap_is_older_than_the_window(live, stream_server, r, settings):
    from tests.streams import Publisher

    p = Player(live)
    s = open_stream(stream_server, p)
    s.next()
    old = s.next().id
    s.close()
    publisher = Publisher(r, settings)
    for i in range(320):  # more than STREAM_REPLAY_WINDOW (300) events, of someone else
        publisher.publish(personal=[(10**9, "score", {"job_id": f"x{i}", "score": i, "rank": 1, "score_delta": 1,
                                                      "flagged": False})])
    for last in (old, f"{old}-1", "99999999999999999999-1"):
        again = open_stream(stream_server, p, last_event_id=last)
        try:
            again.next()
            assert again.next().event == "scoreboard"
            assert again.next().event == "resync"
        finally:
            again.close()


# ---------------------------------------------------------------- heartbeats, logout, expiry


def test_ping_comment_every_heartbeat(live, stream_server):
    s = open_stream(stream_server, Player(live))
    try:
        s.next(), s.next()
        ping = s.next(timeout=5, skip_pings=False)  # STREAM_HEARTBEAT=1 here; 15 s by default
        assert ping.event == ":" and ping.data == "ping"
    finally:
        s.close()


def test_logout_ends_every_stream_of_that_session_within_2s(live, stream_server):
    p, other = Player(live), Player(live)
    refreshed = p.http.post(f"{live}/api/auth/refresh",
                            headers={"Authorization": f"Bearer {p.tokens['refresh_token']}"}).json()["access_token"]
    streams = [open_stream(stream_server, p), Stream(stream_server.base, refreshed, via="query")]
    bystander = open_stream(stream_server, other)
    try:
        for s in streams + [bystander]:
            s.next(), s.next()
        started = time.monotonic()
        assert p.http.post(f"{live}/api/auth/logout").status_code == 200
        for s in streams:
            rest = s.wait_end(timeout=2 - (time.monotonic() - started) + 0.05)
            named = [e for e in rest if e.event != ":"]
            assert named[-1].event == "logout" and named[-1].json() == {"reason": "revoked"}
        bystander.next(timeout=5, skip_pings=False)
        assert not bystander.ended.is_set()
    finally:
        for s in streams + [bystander]:
            s.close()


def test_revocation_is_checked_again_on_heartbeat(live, stream_server, r, settings):
    p = Player(live)
    token = mint_token(settings, p.id)
    s = Stream(stream_server.base, token)
    try:
        s.next(), s.next()
        import jwt

        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        r.set(Keys(settings.redis_prefix).revoked(jti), 1, ex=60)  # revoked without a pub/sub message
        rest = s.wait_end(timeout=5)
        assert [e.event for e in rest if e.event != ":"][-1] == "logout"
    finally:
        s.close()


def test_stream_ends_when_the_token_expires(live, stream_server, settings):
    p = Player(live)
    s = Stream(stream_server.base, mint_token(settings, p.id, expires_in=2))
    try:
        assert s.status == 200
        s.next(), s.next()
        rest = s.wait_end(timeout=6)
        logout = [e for e in rest if e.event != ":"][-1]
        assert logout.event == "logout" and logout.json() == {"reason": "expired"}
    finally:
        s.close()


def test_per_user_cap_on_open_streams(live, stream_server):
    p = Player(live)
    opened = [open_stream(stream_server, p) for _ in range(3)]  # STREAM_MAX_PER_USER=3 here
    try:
        for s in opened:
            s.next()
        refused = Stream(stream_server.base, p.tokens["access_token"])
        assert refused.status == 429 and refused.body["error"]["code"] == "too_many_streams"
        assert refused.headers["Retry-After"]
        other = open_stream(stream_server, Player(live))  # the cap is per user
        other.close()
        opened.pop().close()
        deadline = time.monotonic() + 5
        while True:
            s = Stream(stream_server.base, p.tokens["access_token"])
            if s.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert s.status == 200
        opened.append(s)
    finally:
        for s in opened:
            s.close()


def test_stream_process_metrics(live, stream_server):
    s = open_stream(stream_server, Player(live))
    try:
        s.next(), s.next()
        s.next(timeout=5, skip_pings=False)  # a ping has been counted
        text = requests.get(f"{stream_server.base}/metrics").text
        gauges = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                  if line.startswith("scoreboard_stream_")}
        assert gauges["scoreboard_stream_connections"] >= 1
        assert gauges['scoreboard_stream_events_sent_total{event="ping"}'] >= 1
        ready = requests.get(f"{stream_server.base}/readyz").json()
        assert ready["status"] == "ok" and ready["checks"] == {"redis": "ok", "subscription": "ok"}
    finally:
        s.close()
