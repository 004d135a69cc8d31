"""Security around the API: headers on every response, CORS, size and type limits in the
contract's error shape, JWTs with one fixed algorithm, secrets required in production,
and the rate limits on login, registration and action tokens."""

import base64
import json
import os
import re
import subprocess
import sys

import jwt as pyjwt
import pytest
import requests

from scoreboard.settings import Settings, SettingsError
from tests import processes, state
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.raw_http import assert_refusal, exchange

ORIGIN = "https://play.example"
STRICT = {
    "CORS_ORIGINS": f"{ORIGIN}, https://admin.example",
    "HSTS_MAX_AGE": "600",
    "RATE_LIMIT_LOGIN": "3 per minute",
    "RATE_LIMIT_REGISTER": "3 per minute",
    "RATE_LIMIT_ACTIONS": "3 per minute",
}


@pytest.fixture(scope="module")
def strict_web(stack, base_env):
    """A web process on the same services with CORS, HSTS and small limits."""
    proc, base = processes.start_web({**base_env, **STRICT}, LOG_DIR, workers=1)
    yield base
    proc.stop()


@pytest.fixture
def strict(api, strict_web):
    return strict_web


def assert_security_headers(resp):
    h = resp.headers
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]


def assert_error(resp, status, code):
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    assert_security_headers(resp)


def test_security_headers_on_every_kind_of_response(api):
    p = Player(api)
    for resp in (requests.get(f"{api}/api/scoreboard"), requests.get(f"{api}/healthz"),
                 requests.get(f"{api}/api/openapi.json"), requests.get(f"{api}/nowhere"),
                 requests.delete(f"{api}/api/scoreboard"), p.http.get(f"{api}/api/users/me"),
                 requests.get(f"{api}/api/users/me"), p.http.post(f"{api}/api/actions", json={"x": 1})):
        assert_security_headers(resp)
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "Strict-Transport-Security" not in resp.headers  # off outside production unless configured


def test_hsts_when_configured(strict):
    assert requests.get(f"{strict}/healthz").headers["Strict-Transport-Security"] == "max-age=600; includeSubDomains"


def test_cors_for_configured_origins_only(strict):
    preflight = requests.options(f"{strict}/api/score/update", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, prefer, x-not-listed"})
    assert preflight.status_code == 200
    h = preflight.headers
    assert h["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in h["Vary"]
    assert "POST" in h["Access-Control-Allow-Methods"] and h["Access-Control-Max-Age"] == "600"
    # the headers asked for that the API takes, not others
    assert {x.strip().lower() for x in h["Access-Control-Allow-Headers"].split(",")} == {
        "authorization", "content-type", "prefer"}
    assert "Access-Control-Allow-Credentials" not in h
    board = requests.get(f"{strict}/api/scoreboard", headers={"Origin": ORIGIN})
    assert board.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Retry-After" in board.headers["Access-Control-Expose-Headers"]
    stranger = requests.get(f"{strict}/api/scoreboard", headers={"Origin": "https://evil.example"})
    assert stranger.status_code == 200 and "Access-Control-Allow-Origin" not in stranger.headers
    # the API only: not the operators' endpoints, not the dashboard
    for path in ("/healthz", "/admin/rq/"):
        assert "Access-Control-Allow-Origin" not in requests.get(f"{strict}{path}", headers={"Origin": ORIGIN}).headers


def test_no_cors_without_configuration(api):
    resp = requests.get(f"{api}/api/scoreboard", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in resp.headers


POSTS = ["/api/auth/register", "/api/auth/login", "/api/actions", "/api/score/update",
         "/api/admin/flags/1/resolve"]


@pytest.mark.parametrize("path", POSTS)
def test_body_limits_and_types_on_every_post(path, api, db, r, settings):
    admin = Player(api)
    with db.cursor() as cur:
        cur.execute("UPDATE users SET is_admin = true WHERE id = %s", (admin.id,))
    url = f"{api}{path}"
    before = state.snapshot(db, r, settings.redis_prefix)
    big = b'{"a":"' + b"x" * (settings.http.max_content_length + 10) + b'"}'
    assert_error(admin.http.post(url, data=big, headers={"Content-Type": "application/json"}), 413,
                 "payload_too_large")

    def chunks():
        for _ in range(settings.http.max_content_length // 1000 + 2):
            yield b"x" * 1000

    assert_error(admin.http.post(url, data=chunks(), headers={"Content-Type": "application/json"}), 413,
                 "payload_too_large")
    assert_error(admin.http.post(url, data="username=a", headers={"Content-Type": "application/x-www-form-urlencoded"}),
                 415, "unsupported_media_type")
    assert_error(admin.http.post(url, data=b"{}", headers={"Content-Type": "text/plain"}), 415,
                 "unsupported_media_type")
    assert_error(admin.http.post(url, data=b"{nope", headers={"Content-Type": "application/json"}), 400,
                 "malformed_json")
    assert_error(admin.http.post(url, data=b"\xff\xfe{}", headers={"Content-Type": "application/json"}), 400,
                 "malformed_json")
    depth = min(3000, settings.http.max_content_length // 2 - 20)  # deeper than Python's parser recurses
    for nested in (b"[" * depth + b"]" * depth, b'{"username": ' + b"[" * depth + b"]" * depth + b"}"):
        assert_error(admin.http.post(url, data=nested, headers={"Content-Type": "application/json"}), 400,
                     "malformed_json")
    resp = admin.http.post(url, json={"surprise": 1})
    assert_error(resp, 422, "invalid_request")
    assert "surprise" in resp.json()["error"]["fields"]
    assert state.snapshot(db, r, settings.redis_prefix) == before


@pytest.mark.parametrize("method,path,status,code", [
    ("get", "/nowhere", 404, "not_found"),
    ("post", "/api/scoreboard", 405, "method_not_allowed"),
    ("put", "/api/score/update", 405, "method_not_allowed"),
    ("get", "/api/auth/login", 405, "method_not_allowed"),
    ("delete", "/api/admin/flags", 405, "method_not_allowed"),
    ("get", "/api/admin/users/1/ban", 405, "method_not_allowed"),
    ("get", "/api/scoreboard?limit=1000", 422, "invalid_request"),
])
def test_routing_errors_in_the_contract_shape(method, path, status, code, api):
    resp = requests.request(method, f"{api}{path}")
    assert_error(resp, status, code)
    if status == 405:
        assert resp.headers["Allow"]


SERVER_REFUSALS = {
    "request line over 4094 bytes": (b"GET /api/scoreboard?x=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "a header over 8190 bytes": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "over 100 headers": (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n",
                         431),
    "not HTTP at all": (b"NOT HTTP AT ALL\r\n\r\n", 400),
    "a bad header name": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400),
    "an unknown HTTP version": (b"GET /healthz HTTP/7.1\r\nHost: x\r\n\r\n", 400),
    "an unknown transfer coding": (b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\n"
                                   b"Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", 501),
}


@pytest.mark.parametrize("case", list(SERVER_REFUSALS))
def test_what_gunicorn_refuses_itself_is_in_the_contract_shape(case, api):
    """Requests gunicorn answers before the app sees them: JSON in the contract's shape,
    never its HTML page."""
    data, status = SERVER_REFUSALS[case]
    resp_status, headers, body = exchange(api, data)
    assert_refusal(resp_status, headers, body, status)
    assert headers["x-content-type-options"] == "nosniff" and headers["connection"] == "close"


def test_undeclared_query_parameters_are_refused_on_every_documented_operation(api, db, r, settings):
    """Every operation of the OpenAPI document, with or without a query schema, refuses a
    query parameter it does not declare: 422 with the name, and nothing changes."""
    admin = Player(api)
    with db.cursor() as cur:
        cur.execute("UPDATE users SET is_admin = true WHERE id = %s", (admin.id,))
    spec = requests.get(f"{api}/api/openapi.json").json()
    before = state.snapshot(db, r, settings.redis_prefix)
    operations = [(method, path) for path, item in spec["paths"].items() for method in item if method != "parameters"]
    assert len(operations) >= 18
    for method, path in operations:
        url = api + re.sub(r"\{[^}]+\}", "1", path)
        resp = admin.http.request(method, f"{url}?surprise=1", json={}, timeout=10)
        assert_error(resp, 422, "invalid_request")
        assert resp.json()["error"]["fields"] == {"surprise": ["Unknown field."]}, (method, path)
    # beside declared ones, and on the board's cached fast path
    for url in ("/api/scoreboard?limit=5&surprise=1", "/api/scoreboard?surprise=", "/api/admin/flags?limit=5&x=1"):
        resp = admin.http.get(api + url)
        assert_error(resp, 422, "invalid_request")
    assert state.snapshot(db, r, settings.redis_prefix) == before
    assert requests.get(f"{api}/api/scoreboard?limit=5").status_code == 200
    assert admin.http.get(f"{api}/api/admin/flags?limit=5&state=open").status_code == 200


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_jwts_with_another_algorithm_or_a_tampered_payload_are_refused(api, settings):
    p, other = Player(api), Player(api)
    token = p.tokens["access_token"]
    claims = pyjwt.decode(token, options={"verify_signature": False})
    cases = {
        "HS512 with the right key": pyjwt.encode(claims, settings.jwt_secret_key, algorithm="HS512"),
        "alg none": pyjwt.encode(claims, None, algorithm="none"),
        "another user's id, the original signature": ".".join(
            [token.split(".")[0], _b64({**claims, "sub": str(other.id)}), token.split(".")[2]]),
        "header says none, signature kept": ".".join([_b64({"alg": "none", "typ": "JWT"}), *token.split(".")[1:]]),
        "signature dropped": ".".join(token.split(".")[:2]) + ".",
        "a refresh token as access token": p.tokens["refresh_token"],
    }
    for name, forged in cases.items():
        resp = requests.get(f"{api}/api/users/me", headers={"Authorization": f"Bearer {forged}"})
        assert_error(resp, 401, "invalid_token")
        resp = requests.post(f"{api}/api/actions", json={"action_type": "tap"},
                             headers={"Authorization": f"Bearer {forged}"})
        assert resp.status_code == 401, name
    assert requests.get(f"{api}/api/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_jwts_signed_with_the_real_key_but_missing_what_the_service_relies_on_are_refused(api, settings):
    """A token without ``exp`` would never expire; one whose subject is not a user id made a
    view fail. Both, and their kin, are 401 ``invalid_token`` on the API and the stream."""
    p = Player(api)
    access = pyjwt.decode(p.tokens["access_token"], options={"verify_signature": False})
    refresh = pyjwt.decode(p.tokens["refresh_token"], options={"verify_signature": False})

    def without(claims, name):
        return {k: v for k, v in claims.items() if k != name}

    def signed(claims):
        return pyjwt.encode(claims, settings.jwt_secret_key, algorithm="HS256")

    cases = {
        "no exp": without(access, "exp"),
        "exp not a number": {**access, "exp": "tomorrow"},
        "subject not a number": {**access, "sub": "admin"},
        "subject with an underscore": {**access, "sub": f"{p.id}_0"},
        "subject in another script's digits": {**access, "sub": "\u0661"},
        "subject with a space": {**access, "sub": f" {p.id}"},
        "subject zero": {**access, "sub": "0"},
        "subject beyond a bigint": {**access, "sub": str(2**63)},
        "subject as a JSON number": {**access, "sub": p.id},
        "no subject": without(access, "sub"),
        "no jti": without(access, "jti"),
        "sid not a string": {**access, "sid": {"a": 1}},
    }
    me, stream = f"{api}/api/users/me", f"{api}/api/scoreboard/stream"
    for name, claims in cases.items():
        bearer = {"Authorization": f"Bearer {signed(claims)}"}
        assert_error(requests.get(me, headers=bearer), 401, "invalid_token")
        assert requests.post(f"{api}/api/actions", json={"action_type": "tap"}, headers=bearer).status_code == 401, name
        resp = requests.get(stream, headers=bearer, timeout=10, stream=True)
        assert (resp.status_code, resp.json()["error"]["code"]) == (401, "invalid_token"), name
    for name in ("exp", "sub", "jti"):
        resp = requests.post(f"{api}/api/auth/refresh", headers={"Authorization": f"Bearer {signed(without(refresh, name))}"})
        assert_error(resp, 401, "invalid_token")
    # the genuine tokens still work
    assert p.http.get(me).status_code == 200
    assert p.http.post(f"{api}/api/auth/refresh", headers={"Authorization": f"Bearer {p.tokens['refresh_token']}"}
                       ).status_code == 200


PROD = {"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x", "SCOREBOARD_ENV": "production"}


@pytest.mark.parametrize("env,message", [
    ({}, "missing SECRET_KEY"),
    ({"SECRET_KEY": "dev"}, "SECRET_KEY is too weak"),
    ({"SECRET_KEY": "changeme"}, "SECRET_KEY is too weak"),
    ({"SECRET_KEY": "s" * 31}, "SECRET_KEY is too weak"),
    ({"SECRET_KEY": "s" * 48, "JWT_SECRET_KEY": "secret"}, "JWT_SECRET_KEY is too weak"),
])
def test_production_refuses_missing_or_weak_secrets(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({**PROD, **env})


def test_production_defaults_are_the_safe_ones():
    settings = Settings.from_env({**PROD, "SECRET_KEY": "s" * 48})
    assert settings.http.hsts_max_age >= 31536000 and settings.http.admin_cookie_secure and settings.http.cors_origins == ()
    assert Settings.from_env({**PROD, "SECRET_KEY": "s" * 48, "SCOREBOARD_ENV": "test"}).http.hsts_max_age == 0


def test_the_web_process_does_not_start_with_a_default_secret():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "JWT_SECRET_KEY")}
    env.update(PROD, SECRET_KEY="changeme")
    done = subprocess.run([sys.executable, "-c", "import web.wsgi"], cwd=processes.ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "SECRET_KEY is too weak for production" in done.stderr


# --- rate limits (the submission limit is in tests/test_submit.py) -------------------

def assert_limited(resp):
    assert_error(resp, 429, "rate_limited")
    assert 0 < int(resp.headers["Retry-After"]) <= 60


def test_login_attempts_are_limited_per_address(strict, db, r, settings):
    p = Player(strict)  # one login
    for _ in range(2):
        resp = requests.post(f"{strict}/api/auth/login", json={"username": p.username, "password": "guess-guess"})
        assert resp.status_code == 401
    # the 4th attempt in a minute is refused even with the right password
    assert_limited(requests.post(f"{strict}/api/auth/login", json={"username": p.username, "password": p.password}))
    assert_limited(requests.post(f"{strict}/api/auth/login", json={"username": "other", "password": "whatever1"}))


def test_registration_is_limited_per_address(strict, db, r, settings):
    for i in range(3):
        resp = requests.post(f"{strict}/api/auth/register", json={"username": f"reg_{i}", "password": "12345678"})
        assert resp.status_code == 201
    before = state.snapshot(db, r, settings.redis_prefix)
    assert_limited(requests.post(f"{strict}/api/auth/register", json={"username": "reg_x", "password": "12345678"}))
    assert state.snapshot(db, r, settings.redis_prefix) == before


def test_action_tokens_are_limited_per_user(strict, api, db, r, settings):
    p, other = Player(api), Player(api)  # registered on the main web: the strict one limits registration
    for _ in range(3):
        assert p.http.post(f"{strict}/api/actions", json={"action_type": "tap"}).status_code == 201
    before = state.snapshot(db, r, settings.redis_prefix)
    assert_limited(p.http.post(f"{strict}/api/actions", json={"action_type": "tap"}))
    assert state.snapshot(db, r, settings.redis_prefix) == before
    # per user, not per address: another user from the same address is not limited
    assert other.http.post(f"{strict}/api/actions", json={"action_type": "tap"}).status_code == 201


def test_chunked_bodies_are_read_whole_or_refused(api, db, r, settings):
    p = Player(api)
    url = f"{api}/api/actions"

    def chunked(*parts):
        return (part for part in parts)

    # within the limit: read whole, as with a Content-Length
    ok = p.http.post(url, data=chunked(b'{"action_type"', b': "tap"}'), headers={"Content-Type": "application/json"})
    assert ok.status_code == 201, ok.text
    # over the limit, even when the first MAX_CONTENT_LENGTH bytes alone would parse
    before = state.snapshot(db, r, settings.redis_prefix)
    padding = b" " * (settings.http.max_content_length + 10)
    resp = p.http.post(url, data=chunked(b'{"action_type": "tap"}', padding), headers={"Content-Type": "application/json"})
    assert_error(resp, 413, "payload_too_large")
    assert state.snapshot(db, r, settings.redis_prefix) == before
    # the contract's order: an unauthenticated caller hears 401 first, whatever the body
    resp = requests.post(url, data=chunked(b"{}", padding), headers={"Content-Type": "application/json"})
    assert_error(resp, 401, "missing_token")


@pytest.mark.parametrize("given,kept", [
    ("trace-1.a_B", True), ("x" * 64, True), ("x" * 65, False), ("", False), ("two words", False),
    ('<meta http-equiv="refresh" content="0;url=//evil.example">', False), ("naïve", False), ("a/b", False),
])
def test_only_request_ids_of_safe_characters_are_taken(api, given, kept):
    """The request id is stored with the submission and shown by admin tools: the caller's is
    kept only when it is [A-Za-z0-9._-]{1,64}, else the request gets a fresh one."""
    for path in ("/healthz", "/api/scoreboard", "/api/scoreboard?limit=7"):  # the cached board answers itself
        echoed = requests.get(f"{api}{path}", headers={"X-Request-ID": given.encode()}).headers["X-Request-ID"]
        if kept:
            assert echoed == given, path
        else:
            assert re.fullmatch(r"[0-9a-f]{16}", echoed), (path, echoed)


@pytest.mark.parametrize("configured,origin,allowed", [
    ("*", "https://anyone.example", "*"),
    ("http://[::1]:8080", "http://[::1]:8080", "http://[::1]:8080"),  # matched as written, not as a pattern
    ("http://[::1]:8080", "http://1:8080", None),  # which the pattern [::1] would let in
    ("https://play.example", "https://play.example.evil.example", None),
])
def test_cors_origins_match_exactly_or_all(base_env, configured, origin, allowed):
    from web.app import create_app

    app = create_app(Settings.from_env({**base_env, "CORS_ORIGINS": configured}))
    client = app.test_client()
    preflight = client.options("/api/score/update", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    board = client.get("/api/scoreboard", headers={"Origin": origin})
    for resp in (preflight, board):
        assert resp.headers.get("Access-Control-Allow-Origin") == allowed
    assert "Access-Control-Allow-Origin" not in client.get("/api/scoreboard").headers  # no Origin, no CORS
    assert "Access-Control-Allow-Origin" not in client.get("/healthz", headers={"Origin": origin}).headers
    app.extensions["scoreboard"].engine.dispose()
