"""The admin API over HTTP, end to end: flag, list, approve, revert, ban, unban, and who
may call it (the role checked in PostgreSQL on every call; the CLI grants it)."""

import json
import os
import subprocess
import sys
import time

import pytest
import requests

from scoreboard.redis_client import Keys
from tests import invariants, state
from tests.client import Player, wait_applied
from tests.processes import ROOT


def make_admin(api, db) -> Player:
    admin = Player(api)
    with db.cursor() as cur:
        cur.execute("UPDATE users SET is_admin = true WHERE id = %s", (admin.id,))
    return admin


def flagged_submission(p: Player, delta: int = 8) -> dict:
    """A coin pickup submitted at once: faster than humanly possible, so flagged (and applied)."""
    resp = p.submit(p.start("coin_pickup"), delta, wait=10)
    body = resp.json() if resp.status_code == 200 else wait_applied(p, resp.json()["job_id"])["result"]
    assert body["state"] == "applied" and body["flagged"] is True, body
    return body


def board(api):
    return requests.get(f"{api}/api/scoreboard").json()


class Events:
    """The board events published on Redis (what the stream relays to viewers)."""

    def __init__(self, r, settings):
        self.pubsub = r.pubsub()
        self.pubsub.subscribe(Keys(settings.redis_prefix).events_channel)
        self.pubsub.get_message(timeout=1)  # the subscription confirmation

    def next_board(self, timeout=10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.5)
            if message and message["type"] == "message":
                body = json.loads(message["data"])
                if (body.get("boards") or {}).get("all-time"):
                    return body["boards"]["all-time"]
        raise AssertionError("no board event")

    def close(self):
        self.pubsub.close()


ADMIN_CALLS = [
    ("get", "/api/admin/flags", None),
    ("get", "/api/admin/users", None),
    ("get", "/api/admin/failed-jobs", None),
    ("post", "/api/admin/flags/1/resolve", {"decision": "approve"}),
    ("post", "/api/admin/users/1/ban", None),
    ("post", "/api/admin/users/1/unban", None),
    ("post", "/api/admin/session", None),
]


@pytest.mark.parametrize("method,path,body", ADMIN_CALLS)
def test_admin_calls_refuse_anonymous_and_non_admins(method, path, body, api, db, r, settings):
    player = Player(api)
    before = state.snapshot(db, r, settings.redis_prefix)
    resp = getattr(requests, method)(f"{api}{path}", json=body)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "missing_token"
    resp = requests.request(method, f"{api}{path}", json=body, headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_token"
    resp = player.http.request(method, f"{api}{path}", json=body)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"
    assert "set-cookie" not in resp.headers
    assert state.snapshot(db, r, settings.redis_prefix) == before


def test_the_role_is_checked_at_every_call(api, db):
    admin = make_admin(api, db)
    assert admin.http.get(f"{api}/api/admin/flags").status_code == 200
    with db.cursor() as cur:
        cur.execute("UPDATE users SET is_admin = false WHERE id = %s", (admin.id,))
    # the same access token, the role gone: refused at once
    assert admin.http.get(f"{api}/api/admin/flags").status_code == 403


def test_grant_and_revoke_admin_from_the_command_line(api, db, database_url):
    player = Player(api)
    env = {**os.environ, "DATABASE_URL": database_url}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "scoreboard", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    done = cli("grant-admin", player.username)
    assert done.returncode == 0 and player.username in done.stdout
    assert player.http.get(f"{api}/api/admin/flags").status_code == 200
    assert cli("revoke-admin", player.username).returncode == 0
    assert player.http.get(f"{api}/api/admin/flags").status_code == 403
    missing = cli("grant-admin", "nobody-at-all")
    assert missing.returncode == 1 and "no user" in missing.stderr


def test_flag_list_approve(api, db, r, settings):
    admin, cheat, honest = make_admin(api, db), Player(api), Player(api)
    honest.earn(4)
    applied = flagged_submission(cheat, 8)
    flags = admin.http.get(f"{api}/api/admin/flags", params={"state": "open"}).json()["flags"]
    assert len(flags) == 1
    flag = flags[0]
    assert flag["user_id"] == cheat.id and flag["username"] == cheat.username
    assert flag["job_id"] == applied["job_id"] and flag["score_delta"] == 8 and flag["action_type"] == "coin_pickup"
    assert set(flag["rules"]) == {"too_fast"} and flag["rules"]["too_fast"]["min_duration_ms"] == 100
    assert flag["state"] == "open" and flag["resolved_at"] is None and flag["resolved_by"] is None

    resp = admin.http.post(f"{api}/api/admin/flags/{flag['id']}/resolve", json={"decision": "approve"})
    assert resp.status_code == 200
    assert resp.json() == {"flag_id": flag["id"], "state": "approved", "user_id": cheat.id, "score": 8}
    approved = admin.http.get(f"{api}/api/admin/flags", params={"state": "approved"}).json()["flags"]
    assert [f["id"] for f in approved] == [flag["id"]] and approved[0]["resolved_by"] == admin.id
    assert admin.http.get(f"{api}/api/admin/flags", params={"state": "open"}).json()["flags"] == []
    # decided once: a second decision is refused and changes nothing
    before = state.snapshot(db, r, settings.redis_prefix)
    again = admin.http.post(f"{api}/api/admin/flags/{flag['id']}/resolve", json={"decision": "revert"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "flag_resolved"
    assert state.snapshot(db, r, settings.redis_prefix) == before
    assert [e["score"] for e in board(api)["entries"]] == [8, 4]


def test_revert_takes_the_points_back_and_republishes_the_board(api, db, r, settings):
    admin, cheat, honest = make_admin(api, db), Player(api), Player(api)
    honest.earn(5)
    flagged_submission(cheat, 9)
    assert [(e["user_id"], e["score"]) for e in board(api)["entries"]] == [(cheat.id, 9), (honest.id, 5)]
    version = board(api)["version"]
    [flag] = admin.http.get(f"{api}/api/admin/flags").json()["flags"]

    events = Events(r, settings)
    try:
        resp = admin.http.post(f"{api}/api/admin/flags/{flag['id']}/resolve", json={"decision": "revert"})
        assert resp.status_code == 200
        assert resp.json() == {"flag_id": flag["id"], "state": "reverted", "user_id": cheat.id, "score": 0}
        event = events.next_board()
    finally:
        events.close()
    assert [(e["user_id"], e["score"], e["rank"]) for e in event["entries"]] == [(honest.id, 5, 1), (cheat.id, 0, 2)]
    assert event["version"] > version
    assert board(api)["entries"] == event["entries"]
    assert cheat.http.get(f"{api}/api/users/me").json()["score"] == 0
    with db.cursor() as cur:
        cur.execute("SELECT score_change, new_score, reason, action_id FROM score_history WHERE user_id = %s"
                    " ORDER BY id", (cheat.id,))
        assert cur.fetchall()[-1] == (-9, 0, "revert", None)
        cur.execute("SELECT state, resolved_by FROM score_flags WHERE id = %s", (flag["id"],))
        assert cur.fetchone() == ("reverted", admin.id)
    invariants.check(db, r, settings.redis_prefix)


def test_ban_hides_the_user_at_once_and_refuses_them_until_unbanned(api, db, r, settings):
    admin, cheat, honest = make_admin(api, db), Player(api), Player(api)
    honest.earn(5)
    cheat.earn(50)
    pending = cheat.start("tap")  # a token from before the ban

    events = Events(r, settings)
    try:
        resp = admin.http.post(f"{api}/api/admin/users/{cheat.id}/ban")
        assert resp.status_code == 200
        assert resp.json() == {"user_id": cheat.id, "username": cheat.username, "banned": True, "score": 50}
        event = events.next_board()
    finally:
        events.close()
    assert [e["user_id"] for e in event["entries"]] == [honest.id]
    assert [e["user_id"] for e in board(api)["entries"]] == [honest.id]
    assert [e["user_id"] for e in requests.get(f"{api}/api/scoreboard", params={"limit": 100}).json()["entries"]] \
        == [honest.id]
    assert cheat.http.get(f"{api}/api/users/me").json()["rank"] is None

    before = state.snapshot(db, r, settings.redis_prefix)
    refused = cheat.submit(pending, 5)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "user_banned"
    refused = cheat.http.post(f"{api}/api/actions", json={"action_type": "tap"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "user_banned"
    assert state.snapshot(db, r, settings.redis_prefix) == before

    resp = admin.http.post(f"{api}/api/admin/users/{cheat.id}/unban")
    assert resp.status_code == 200 and resp.json()["banned"] is False
    assert [(e["user_id"], e["score"]) for e in board(api)["entries"]] == [(cheat.id, 50), (honest.id, 5)]
    assert cheat.submit(pending, 5, wait=10).status_code in (200, 202)
    invariants.wait_until_settled(r, settings.redis_prefix)
    invariants.check(db, r, settings.redis_prefix)


def test_ban_and_resolve_refusals(api, db, r, settings):
    admin, player = make_admin(api, db), Player(api)
    before = state.snapshot(db, r, settings.redis_prefix)
    cases = [
        (f"/api/admin/users/{admin.id}/ban", None, 409, "cannot_ban_self"),
        ("/api/admin/users/999999/ban", None, 404, "not_found"),
        ("/api/admin/users/999999/unban", None, 404, "not_found"),
        (f"/api/admin/users/{2**63}/ban", None, 404, "not_found"),
        ("/api/admin/flags/999999/resolve", {"decision": "approve"}, 404, "not_found"),
        ("/api/admin/flags/1/resolve", {"decision": "delete"}, 422, "invalid_request"),
        ("/api/admin/flags/1/resolve", {"decision": "approve", "extra": 1}, 422, "invalid_request"),
        ("/api/admin/flags/1/resolve", {}, 422, "invalid_request"),
    ]
    for path, body, status, code in cases:
        resp = admin.http.post(f"{api}{path}", json=body)
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), (path, resp.text)
    assert state.snapshot(db, r, settings.redis_prefix) == before
    assert player  # untouched


def test_flag_list_filters_and_pages(api, db):
    admin, a, b = make_admin(api, db), Player(api), Player(api)
    for p in (a, b, a):
        flagged_submission(p, 3)
    url = f"{api}/api/admin/flags"
    everything = admin.http.get(url).json()
    ids = [f["id"] for f in everything["flags"]]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True) and everything["next_before"] is None
    first = admin.http.get(url, params={"limit": 2}).json()
    assert [f["id"] for f in first["flags"]] == ids[:2] and first["next_before"] == ids[1]
    second = admin.http.get(url, params={"limit": 2, "before": first["next_before"]}).json()
    assert [f["id"] for f in second["flags"]] == ids[2:] and second["next_before"] is None
    assert {f["user_id"] for f in admin.http.get(url, params={"user_id": a.id}).json()["flags"]} == {a.id}
    assert len(admin.http.get(url, params={"rule": "too_fast"}).json()["flags"]) == 3
    assert admin.http.get(url, params={"rule": "jump_into_top"}).json()["flags"] == []
    for bad in ({"state": "closed"}, {"limit": 0}, {"limit": 101}, {"user_id": "x"}, {"before": -1},
                {"before": 2**63}, {"rule": "too\x00fast"}):
        resp = admin.http.get(url, params=bad)
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_request", bad


def test_user_list_finds_by_any_part_of_the_name_and_by_ban(api, db):
    admin, alice, bob = make_admin(api, db), Player(api, username="Alice-admin-test"), Player(api)
    url = f"{api}/api/admin/users"
    found = admin.http.get(url, params={"search": "CE-ADM"}).json()
    assert found == {"users": [{"id": alice.id, "username": "Alice-admin-test", "score": 0, "banned": False,
                                "is_admin": False}], "next_before": None}
    assert admin.http.post(f"{api}/api/admin/users/{bob.id}/ban").status_code == 200
    assert [u["id"] for u in admin.http.get(url, params={"banned": "true"}).json()["users"]] == [bob.id]
    assert bob.id not in [u["id"] for u in admin.http.get(url, params={"banned": "false"}).json()["users"]]
    everyone = [u["id"] for u in admin.http.get(url).json()["users"]]
    assert everyone == sorted(everyone, reverse=True) and {admin.id, alice.id, bob.id} <= set(everyone)
    first = admin.http.get(url, params={"limit": 2}).json()
    rest = admin.http.get(url, params={"limit": 100, "before": first["next_before"]}).json()
    assert [u["id"] for u in first["users"] + rest["users"]] == everyone
    listed = admin.http.get(url, params={"search": admin.username}).json()["users"]
    assert [u["is_admin"] for u in listed if u["id"] == admin.id] == [True]
    for bad in ({"search": ""}, {"search": "x" * 33}, {"banned": "maybe"}, {"limit": 0}, {"before": 0},
                {"search": "a\x00b"}):
        resp = admin.http.get(url, params=bad)
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_request", bad


def test_the_login_token_tells_the_page_who_may_enter_the_admin_room(api, db):
    import jwt

    admin, player = make_admin(api, db), Player(api)
    admin.login()  # the role was granted after the first login
    claims = [jwt.decode(p.tokens["access_token"], options={"verify_signature": False}) for p in (admin, player)]
    assert claims[0].get("adm") is True and "adm" not in claims[1]
    refreshed = requests.post(f"{api}/api/auth/refresh",
                              headers={"Authorization": f"Bearer {admin.tokens['refresh_token']}"}).json()
    assert jwt.decode(refreshed["access_token"], options={"verify_signature": False}).get("adm") is True
