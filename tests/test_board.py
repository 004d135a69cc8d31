"""The public score board, over HTTP."""

import requests

from tests.client import Player


def board(api, **params):
    r = requests.get(f"{api}/api/scoreboard", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_empty_board(api):
    body = board(api)
    assert body["entries"] == [] and isinstance(body["version"], int) and body["generated_at"] > 0


def test_competition_ranks_and_ties_by_who_reached_first(api):
    a, b, c, d = (Player(api) for _ in range(4))
    a.earn(5)
    b.earn(9)
    c.earn(5)
    d.earn(1)
    entries = board(api)["entries"]
    assert [(e["username"], e["rank"], e["score"]) for e in entries] == [
        (b.username, 1, 9), (a.username, 2, 5), (c.username, 2, 5), (d.username, 4, 1)]
    assert entries[0]["user_id"] == b.id
    # a reaches 9 after b: b stays first
    a.earn(4)
    assert [(e["username"], e["rank"]) for e in board(api)["entries"][:2]] == [(b.username, 1), (a.username, 1)]


def test_limit(api):
    players = [Player(api) for _ in range(12)]
    for i, p in enumerate(players):
        p.earn(i + 1)
    assert len(board(api)["entries"]) == 10
    assert [e["score"] for e in board(api, limit=3)["entries"]] == [12, 11, 10]
    assert len(board(api, limit=100)["entries"]) == 12
    for bad in (0, 101, "x", -1):
        r = requests.get(f"{api}/api/scoreboard", params={"limit": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_a_cached_board_answers_like_the_full_app(api):
    """The plain request is answered from the cache ahead of Flask (web/board/cached.py);
    a non-canonical but valid query goes through the full app. Same body, same headers."""
    Player(api).earn(3)
    requests.get(f"{api}/api/scoreboard")  # fills the cache
    fast = requests.get(f"{api}/api/scoreboard", headers={"X-Request-ID": "board-fast-1"})
    full = requests.get(f"{api}/api/scoreboard?limit=010", headers={"X-Request-ID": "board-full-1"})
    assert fast.status_code == full.status_code == 200
    assert fast.content == full.content and fast.json()["entries"][0]["score"] == 3
    assert fast.headers["X-Request-ID"] == "board-fast-1" and full.headers["X-Request-ID"] == "board-full-1"
    ignored = {"date", "x-request-id"}
    assert {k.lower(): v for k, v in fast.headers.items() if k.lower() not in ignored} == \
        {k.lower(): v for k, v in full.headers.items() if k.lower() not in ignored}
    assert fast.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert fast.headers["Cache-Control"] == "no-store"
    too_long = "r" * 65
    generated = requests.get(f"{api}/api/scoreboard", headers={"X-Request-ID": too_long}).headers["X-Request-ID"]
    assert len(generated) == 16 and generated != too_long
    # limits below 10 from the cached top 100, the same entries as the full app's
    assert requests.get(f"{api}/api/scoreboard?limit=1").content == \
        requests.get(f"{api}/api/scoreboard?limit=01").content


def test_version_grows_with_every_applied_update(api):
    p = Player(api)
    versions = []
    for _ in range(3):
        p.earn(1)
        versions.append(board(api)["version"])
    assert versions == sorted(set(versions))


def test_openapi_document_lists_the_contract(api):
    doc = requests.get(f"{api}/api/openapi.json").json()
    for path in ("/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout", "/api/users/me",
                 "/api/actions", "/api/action-types", "/api/score/update", "/api/score/jobs/{job_id}",
                 "/api/scoreboard", "/healthz", "/readyz"):
        assert path in doc["paths"], path
    schema = doc["components"]["schemas"]["SubmissionRequest"]
    assert set(schema["required"]) == {"action_token", "score_delta", "completed_at", "signature"}


def test_health_and_readiness(api):
    assert requests.get(f"{api}/healthz").status_code == 200
    r = requests.get(f"{api}/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"postgresql": "ok", "redis": "ok"}
