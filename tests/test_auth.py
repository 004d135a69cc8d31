"""Accounts and sessions, over HTTP against the real gunicorn app."""

import json
import time

import jwt as pyjwt
import requests

from tests import state
from tests.client import Player


def test_register_returns_the_new_account(api):
    r = requests.post(f"{api}/api/auth/register", json={"username": "ada.l-1_x", "password": "12345678"})
    assert r.status_code == 201
    body = r.json()
    assert body["username"] == "ada.l-1_x" and isinstance(body["id"], int)


def test_register_twice_is_username_taken(api):
    Player(api, "grace")
    r = requests.post(f"{api}/api/auth/register", json={"username": "grace", "password": "another-pass"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "username_taken"


def test_register_refuses_bad_shapes(api, db):
    cases = [
        {"username": "ab", "password": "12345678"},
        {"username": "x" * 33, "password": "12345678"},
        {"username": "bad name", "password": "12345678"},
        {"username": "okname", "password": "short"},
        {"username": "okname", "password": "p" * 129},
        {"username": "okname", "password": "12345678", "extra": 1},
        {"username": 12345, "password": "12345678"},
        {"username": "okname", "password": "1234\x005678"},
        ["okname", "12345678"],
    ]
    for body in cases:
        r = requests.post(f"{api}/api/auth/register", json=body)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_request" and error["message"] and "fields" in error
    with db.cursor() as cur:
        cur.execute("SELECT count(*) FROM users")
        assert cur.fetchone()[0] == 0


def test_login_gives_bearer_tokens(api):
    p = Player(api)
    assert set(p.tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert p.tokens["token_type"] == "Bearer" and p.tokens["expires_in"] > 0
    header = pyjwt.get_unverified_header(p.tokens["access_token"])
    assert header["alg"] == "HS256"


def test_login_with_wrong_password_or_unknown_user_is_invalid_credentials(api):
    p = Player(api)
    for body in ({"username": p.username, "password": "wrong password"},
                 {"username": "nobody-here", "password": "whatever1"}):
        r = requests.post(f"{api}/api/auth/login", json=body)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_credentials"


def test_login_refuses_text_postgresql_cannot_hold_as_a_bad_shape(api, db, r, settings):
    """A NUL character, or an unpaired surrogate (a JSON escape such as \\ud800), is refused
    before it reaches PostgreSQL or the password hasher (both were 500s; the first found
    by tests/test_fuzz.py)."""
    p = Player(api)
    before = state.snapshot(db, r, settings.redis_prefix)
    for body in ({"username": "\x00", "password": "whatever1"}, {"username": p.username + "\x00", "password": "x"},
                 {"username": p.username, "password": p.password + "\x00"},
                 {"username": "\ud800" + p.username, "password": "whatever1"},
                 {"username": p.username, "password": p.password + "\udfff"}):
        resp = requests.post(f"{api}/api/auth/login", data=json.dumps(body),  # ASCII, the surrogates escaped
                             headers={"Content-Type": "application/json"})
        assert resp.status_code == 422, (body, resp.text)
        error = resp.json()["error"]
        assert error["code"] == "invalid_request" and "NUL" in json.dumps(error["fields"]), error
    assert state.snapshot(db, r, settings.redis_prefix) == before


def test_refresh_gives_a_new_access_token(api):
    p = Player(api)
    r = requests.post(f"{api}/api/auth/refresh", headers={"Authorization": f"Bearer {p.tokens['refresh_token']}"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    me = requests.get(f"{api}/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == p.username


def test_refresh_refuses_an_access_token_and_no_token(api):
    p = Player(api)
    r = requests.post(f"{api}/api/auth/refresh", headers={"Authorization": f"Bearer {p.tokens['access_token']}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    r = requests.post(f"{api}/api/auth/refresh")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"


def test_logout_revokes_the_access_and_refresh_tokens(api):
    p = Player(api)
    r = p.http.post(f"{api}/api/auth/logout")
    assert r.status_code == 200 and r.json() == {"revoked": True}
    r = p.http.get(f"{api}/api/users/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_revoked"
    r = requests.post(f"{api}/api/auth/refresh", headers={"Authorization": f"Bearer {p.tokens['refresh_token']}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_revoked"
    assert requests.post(f"{api}/api/auth/logout").status_code == 401
    # a new login is a new session
    p.login()
    assert p.http.get(f"{api}/api/users/me").status_code == 200


def test_me_has_score_and_rank(api):
    p = Player(api)
    r = p.http.get(f"{api}/api/users/me")
    assert r.status_code == 200
    assert r.json() == {"id": p.id, "username": p.username, "score": 0, "rank": None, "boards": {}}
    other = Player(api)
    other.earn(9)
    p.earn(5)
    me = p.http.get(f"{api}/api/users/me").json()
    assert {k: me[k] for k in ("id", "username", "score", "rank")} == {"id": p.id, "username": p.username, "score": 5,
                                                                       "rank": 2}
    assert {board: (place["score"], place["rank"]) for board, place in me["boards"].items()} == {
        "all-time": (5, 2), "daily": (5, 2), "weekly": (5, 2)}


def test_a_token_accepted_before_is_refused_once_it_expires(api, settings):
    """The web remembers tokens it has verified (web/verified_tokens.py); expiry still holds."""
    p = Player(api)
    now = time.time()
    short = pyjwt.encode({"sub": str(p.id), "type": "access", "jti": "short-lived", "iat": int(now),
                          "nbf": int(now), "exp": int(now) + 3, "fresh": False}, settings.jwt_secret_key,
                         algorithm="HS256")
    headers = {"Authorization": f"Bearer {short}"}
    for _ in range(8):  # every web worker verifies and remembers it
        r = requests.get(f"{api}/api/users/me", headers=headers)
        assert r.status_code == 200 and r.json()["id"] == p.id, r.text
    time.sleep(max(0.0, int(now) + 3.2 - time.time()))
    for _ in range(8):
        r = requests.get(f"{api}/api/users/me", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired", r.text


def test_token_errors_have_their_codes(api, settings):
    cases = {
        None: "missing_token",
        "Bearer not-a-jwt": "invalid_token",
        "Basic abc": "missing_token",
    }
    for header, code in cases.items():
        headers = {"Authorization": header} if header else {}
        r = requests.get(f"{api}/api/users/me", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == code, (header, r.text)

    now = int(time.time())
    expired = pyjwt.encode({"sub": "1", "type": "access", "jti": "x", "iat": now - 100, "nbf": now - 100,
                            "exp": now - 10, "fresh": False}, settings.jwt_secret_key, algorithm="HS256")
    r = requests.get(f"{api}/api/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"

    forged = pyjwt.encode({"sub": "1", "type": "access", "jti": "y", "iat": now, "nbf": now, "exp": now + 60,
                           "fresh": False}, "not the server's key", algorithm="HS256")
    r = requests.get(f"{api}/api/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"

    unsigned = pyjwt.encode({"sub": "1", "type": "access", "jti": "z", "iat": now, "nbf": now, "exp": now + 60,
                             "fresh": False}, None, algorithm="none")
    r = requests.get(f"{api}/api/users/me", headers={"Authorization": f"Bearer {unsigned}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
