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
