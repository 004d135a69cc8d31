"""Who may watch, against real stream processes: anonymous viewers (the board alone, a cap
per client address that believes X-Forwarded-For only from trusted proxies), banned users
(their streams end within 2 s, new ones and refreshes are refused), the CORS preflight a
page on another origin needs, and the web's security headers on every stream response."""

from __future__ import annotations

import itertools
import time

import pytest
import requests

from scoreboard.redis_client import Keys
from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.sse import STREAM_PATH, Stream
from tests.streams import live, mint_token, stream_env, stream_environment, stream_server  # noqa: F401 (fixtures)
from tests.test_admin import make_admin
from tests.test_stream import open_stream


def anonymous(base: str, **kw) -> Stream:
    s = Stream(base, None, **kw)
    assert s.status == 200, s.body
    return s


_addresses = itertools.count(1)


def address() -> str:
    """Another client address (a documentation range), for X-Forwarded-For."""
    return f"198.51.100.{next(_addresses) % 250 + 1}"


# ---------------------------------------------------------------- anonymous viewers


def test_an_anonymous_viewer_gets_the_board_and_never_a_personal_event(live, stream_server):
    player = Player(live)
    player.earn(3)
    watcher = anonymous(stream_server.base)
    try:
        assert watcher.next().retry
        first = watcher.next()
        assert first.event == "scoreboard" and first.json()["entries"][0]["score"] == 3
        result = player.earn(4)
        shown = watcher.until(lambda e: e.event == "scoreboard" and e.json()["entries"][0]["score"] == 7)
        assert shown.json()["entries"][0]["username"] == player.username
        mine = open_stream(stream_server, player)  # the player's own stream gets the event...
        try:
            mine.next(), mine.next()
            later = player.earn(1)
            assert mine.until(lambda e: e.event == "score").json()["job_id"] == later["job_id"]
        finally:
            mine.close()
        watcher.until(lambda e: e.event == "scoreboard" and e.json()["entries"][0]["score"] == 8)
        named = {e.event for e in watcher.seen if e.event != ":"}
        assert named == {"message", "scoreboard"}, named  # ...the anonymous one never does
        assert result["job_id"] not in "".join(e.data for e in watcher.seen)
    finally:
        watcher.close()


def test_an_anonymous_reconnect_replays_nothing_personal(live, stream_server):
    player = Player(live)
    s = anonymous(stream_server.base)
    s.next()
    old = s.next().id
    s.close()
    player.earn(2)
    again = anonymous(stream_server.base, last_event_id=f"{old}-0")
    try:
        assert again.next().retry
        assert again.next().json()["entries"][0]["score"] == 2
        again.next(timeout=3, skip_pings=False)  # a ping, not a replayed or resync event
        assert [e.event for e in again.seen if e.event != ":"] == ["message", "scoreboard"]
    finally:
        again.close()


def test_a_token_present_but_not_valid_is_still_refused(live, stream_server, settings):
    p = Player(live)
    for params, headers in (({"access_token": "garbage"}, {}), ({}, {"Cookie": "access_token=garbage"}),
                            ({}, {"Authorization": "Bearer " + mint_token(settings, p.id, expires_in=-5)})):
        r = requests.get(stream_server.base + STREAM_PATH, params=params, headers=headers, timeout=10)
        assert r.status_code == 401, (params, headers, r.text)
        assert r.json()["error"]["code"] in ("invalid_token", "token_expired")


@pytest.fixture
def capped(live, base_env):
    """Two stream processes with a cap of 2 anonymous streams per address: one behind a
    trusted proxy (TRUSTED_PROXIES=1), one reached directly (X-Forwarded-For not believed)."""
    started = [processes.start_stream(stream_environment(base_env, STREAM_MAX_ANONYMOUS_PER_ADDRESS=2,
                                                         TRUSTED_PROXIES=trusted), LOG_DIR)
               for trusted in (1, 0)]
    yield [base for _, base in started]
    for proc, _ in started:
        proc.stop()


@pytest.mark.slow  # starts stream processes of its own
def test_anonymous_streams_are_capped_per_client_address(capped):
    behind_proxy, direct = capped
    opened = []
    try:
        first, second = address(), address()
        opened += [anonymous(behind_proxy, headers={"X-Forwarded-For": first}) for _ in range(2)]
        refused = Stream(behind_proxy, None, headers={"X-Forwarded-For": first})
        assert refused.status == 429 and refused.body["error"]["code"] == "too_many_streams"
        assert refused.headers["Retry-After"] and "per client address" in refused.body["error"]["message"]
        opened.append(anonymous(behind_proxy, headers={"X-Forwarded-For": second}))  # another address
        # reached directly, the forwarded address is not believed: every stream is 127.0.0.1's
        opened += [anonymous(direct, headers={"X-Forwarded-For": address()}) for _ in range(2)]
        spoofed = Stream(direct, None, headers={"X-Forwarded-For": address()})
        assert spoofed.status == 429 and spoofed.body["error"]["code"] == "too_many_streams"
        # a closed stream gives its place back
        opened.pop(0).close()
        deadline = time.monotonic() + 5
        while (s := Stream(behind_proxy, None, headers={"X-Forwarded-For": first})).status != 200:
            assert time.monotonic() < deadline, s.body
            time.sleep(0.1)
        opened.append(s)
    finally:
        for s in opened:
            s.close()


@pytest.mark.slow  # starts a stream process of its own
def test_anonymous_viewers_can_be_turned_away(live, base_env):
    proc, base = processes.start_stream(stream_environment(base_env, STREAM_MAX_ANONYMOUS_PER_ADDRESS=0), LOG_DIR)
    try:
        s = Stream(base, None)
        assert s.status == 401 and s.body["error"]["code"] == "missing_token"
        p = Player(live)
        with_token = Stream(base, p.tokens["access_token"])
        assert with_token.status == 200
        with_token.close()
    finally:
        proc.stop()


# ---------------------------------------------------------------- bans


def test_a_ban_ends_the_users_streams_within_2s_and_refuses_new_ones(live, stream_server, db):
    admin, player, bystander = make_admin(live, db), Player(live), Player(live)
    streams = [open_stream(stream_server, player), open_stream(stream_server, player, via="query")]
    others = [open_stream(stream_server, bystander), anonymous(stream_server.base)]
    try:
        for s in streams + others:
            s.next(), s.next()
        started = time.monotonic()
        assert admin.http.post(f"{live}/api/admin/users/{player.id}/ban").status_code == 200
        for s in streams:
            rest = s.wait_end(timeout=2 - (time.monotonic() - started) + 0.05)
            named = [e for e in rest if e.event != ":"]
            assert named[-1].event == "logout" and named[-1].json() == {"reason": "banned"}
        for s in others:
            s.next(timeout=5, skip_pings=False)
            assert not s.ended.is_set()

        refused = Stream(stream_server.base, player.tokens["access_token"])
        assert refused.status == 403 and refused.body["error"]["code"] == "user_banned"
        again = requests.post(f"{live}/api/auth/refresh",
                              headers={"Authorization": f"Bearer {player.tokens['refresh_token']}"})
        assert again.status_code == 403 and again.json()["error"]["code"] == "user_banned"

        assert admin.http.post(f"{live}/api/admin/users/{player.id}/unban").status_code == 200
        back = open_stream(stream_server, player)
        back.close()
        assert requests.post(f"{live}/api/auth/refresh",
                             headers={"Authorization": f"Bearer {player.tokens['refresh_token']}"}).status_code == 200
    finally:
        for s in streams + others:
            s.close()


@pytest.mark.slow  # waits for a heartbeat
def test_a_ban_whose_message_was_missed_ends_the_stream_at_the_next_heartbeat(live, stream_server, r, settings):
    player = Player(live)
    s = open_stream(stream_server, player)
    try:
        s.next(), s.next()
        r.sadd(Keys(settings.redis_prefix).banned, player.id)  # in Redis, with no message published
        rest = s.wait_end(timeout=5)  # STREAM_HEARTBEAT=1 here
        assert [e.json() for e in rest if e.event == "logout"] == [{"reason": "banned"}]
    finally:
        s.close()


# ---------------------------------------------------------------- headers


def test_a_page_on_another_origin_may_send_its_token_in_a_header(stream_server):
    r = requests.options(stream_server.base + STREAM_PATH, timeout=10, headers={
        "Origin": "https://board.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization,last-event-id"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "last-event-id"} <= allowed
    assert "GET" in r.headers["Access-Control-Allow-Methods"]


def test_every_stream_response_has_the_webs_security_headers(live, stream_server):
    refused = requests.get(stream_server.base + STREAM_PATH, params={"access_token": "garbage"}, timeout=10)
    health = requests.get(stream_server.base + "/healthz", timeout=10)
    s = anonymous(stream_server.base)
    s.close()
    for headers in (refused.headers, health.headers, s.headers):
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "no-store" in headers["Cache-Control"]
    assert refused.headers["Access-Control-Expose-Headers"] == "Retry-After"
