"""The contract's submission checks, one test each: the status, the code, and nothing
changed in PostgreSQL or Redis (tests/test_submit.py has the order of the checks, the
malformed bodies and the rate limit)."""

from __future__ import annotations

import base64
import secrets

import pytest
import requests

from scoreboard.redis_client import Keys
from tests import state
from tests.client import Player, now_ms, sign, wait_applied


@pytest.fixture
def quiet(api, r, settings):
    """The running service with empty state whose (empty) ranking is ready, so that no
    background rebuild changes Redis during a test."""
    r.set(Keys(settings.redis_prefix).board_ready("all-time", "all"), 1)
    return api


def _other_users_token(p, other, action):
    return other.http.post(f"{p.base}/api/score/update", json=p.body(action, 1))


def _replay(p, action):
    """Submit and apply the token once; the replay is then sent after the snapshot."""
    done = p.submit(action, 3, wait=10)
    assert done.status_code in (200, 202), done.text
    if done.status_code == 202:
        wait_applied(p, done.json()["job_id"])


SKEW_MS = 30_000


CASES = {
    # name: (how to make the request, expected status, expected code)
    "unknown token": (lambda p, o, a: p.submit({**a, "action_token": secrets.token_urlsafe(24)}, 1), 403,
                      "token_unknown"),
    "token issued to another user": (_other_users_token, 403, "token_unknown"),
    "replayed token": (None, 403, "token_used"),
    "signature over a different delta": (
        lambda p, o, a: p.submit(a, 2, signature=sign(a["secret"], a["action_token"], 3, now_ms())), 403,
        "bad_signature"),
    "signature with another token's secret": (
        lambda p, o, a: p.submit(a, 2, signature=sign(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                                                      a["action_token"], 2, now_ms())), 403, "bad_signature"),
    "expired token": (None, 403, "token_expired"),
    "completed_at in the future beyond the skew": (
        lambda p, o, a: p.submit(a, 1, completed_at=now_ms() + SKEW_MS + 5_000), 403, "token_expired"),
    "completed_at before the token was issued": (
        lambda p, o, a: p.submit(a, 1, completed_at=a["issued_at"] - SKEW_MS - 5_000), 403, "token_expired"),
    "delta of 0": (lambda p, o, a: p.submit(a, 0), 422, "invalid_score"),
    "negative delta where the type allows none": (lambda p, o, a: p.submit(a, -1), 422, "invalid_score"),
    "delta above the type's maximum": (lambda p, o, a: p.submit(a, 11), 422, "invalid_score"),
    "integer beyond 64 bits": (lambda p, o, a: p.http.post(f"{p.base}/api/score/update",
                                                           json={**p.body(a, 1), "score_delta": 2**64}),
                               422, "invalid_request"),
    "integer just beyond int64": (lambda p, o, a: p.http.post(f"{p.base}/api/score/update",
                                                              json={**p.body(a, 1), "score_delta": 2**63}),
                                  422, "invalid_request"),
    "float delta": (lambda p, o, a: p.http.post(f"{p.base}/api/score/update",
                                                json={**p.body(a, 1), "score_delta": 1.0}), 422, "invalid_request"),
    "string delta": (lambda p, o, a: p.http.post(f"{p.base}/api/score/update",
                                                 json={**p.body(a, 1), "score_delta": "1"}), 422, "invalid_request"),
    "boolean delta": (lambda p, o, a: p.http.post(f"{p.base}/api/score/update",
                                                  json={**p.body(a, 1), "score_delta": True}), 422,
                      "invalid_request"),
    "no JWT": (lambda p, o, a: requests.post(f"{p.base}/api/score/update", json=p.body(a, 1)), 401,
               "missing_token"),
    "banned user": (None, 403, "user_banned"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_submission_changes_nothing(case, quiet, db, r, settings):
    make, status, code = CASES[case]
    p, other = Player(quiet), Player(quiet)
    action = p.start("coin_pickup")  # 1..10 points, no negative deltas
    keys = Keys(settings.redis_prefix)
    if case == "replayed token":
        _replay(p, action)
        make = lambda p, o, a: p.submit(a, 3)  # noqa: E731
    elif case == "expired token":
        # the token's life (issued 6 min ago, 5 min long) ended beyond the allowed skew
        issued = now_ms() - 360_000
        r.hset(keys.action_token(action["action_token"]),
               mapping={"issued_at": issued, "expires_at": issued + 300_000})
        make = lambda p, o, a: p.submit(a, 1, completed_at=issued + 1_000)  # noqa: E731
    elif case == "banned user":
        with db.cursor() as cur:
            cur.execute("UPDATE users SET banned = true WHERE id = %s", (p.id,))
        r.sadd(keys.banned, p.id)
        make = lambda p, o, a: p.submit(a, 1)  # noqa: E731
    before = state.snapshot(db, r, settings.redis_prefix)
    resp = make(p, other, action)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and error["message"]
    if code == "invalid_request":
        assert error["fields"].get("score_delta"), error
    after = state.snapshot(db, r, settings.redis_prefix)
    assert after == before, state.diff(before, after)


def test_the_token_still_works_after_refusals(quiet, db, r, settings):
    """Refused attempts burn nothing: the same token is then accepted and applied once."""
    p = Player(quiet)
    action = p.start("coin_pickup")
    for delta in (0, -1, 11):
        assert p.submit(action, delta).status_code == 422
    assert p.submit(action, 2, signature="0" * 64).status_code == 403
    resp = p.submit(action, 2, wait=10)
    assert resp.status_code in (200, 202)
    with db.cursor() as cur:
        for _ in range(100):
            cur.execute("SELECT current_score FROM users WHERE id = %s", (p.id,))
            if cur.fetchone()[0] == 2:
                break
        else:
            raise AssertionError("the submission was not applied")


def test_banned_user_cannot_start_actions(quiet, db, r, settings):
    p = Player(quiet)
    with db.cursor() as cur:
        cur.execute("UPDATE users SET banned = true WHERE id = %s", (p.id,))
    r.sadd(Keys(settings.redis_prefix).banned, p.id)
    before = state.snapshot(db, r, settings.redis_prefix)
    resp = p.http.post(f"{quiet}/api/actions", json={"action_type": "coin_pickup"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "user_banned"
    assert state.snapshot(db, r, settings.redis_prefix) == before
