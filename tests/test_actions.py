"""Action types and action tokens, over HTTP."""

import base64

import requests

from tests.client import Player


def test_action_types_are_public_and_complete(api, settings):
    r = requests.get(f"{api}/api/action-types")
    assert r.status_code == 200
    types = r.json()["action_types"]
    assert [t["name"] for t in types] == [t.name for t in settings.actions.types]
    for t in types:
        assert set(t) == {"name", "min_delta", "max_delta", "min_duration_ms"}
        assert t["min_delta"] <= t["max_delta"]


def test_start_action_issues_a_one_time_token(api, r, settings):
    p = Player(api)
    action = p.start("level_complete")
    assert set(action) == {"action_token", "secret", "action_type", "issued_at", "expires_at"}
    assert action["action_type"] == "level_complete"
    assert len(base64.urlsafe_b64decode(action["action_token"] + "==")) * 8 >= 128
    assert len(base64.urlsafe_b64decode(action["secret"])) == 32
    assert action["expires_at"] - action["issued_at"] == 300_000
    ttl = r.ttl(f"{settings.redis_prefix}at:{action['action_token']}")
    assert 300 <= ttl <= 300 + settings.actions.clock_skew + 60
    assert p.start()["action_token"] != action["action_token"]


def test_unknown_action_type_is_refused(api, r, settings):
    p = Player(api)
    resp = p.http.post(f"{api}/api/actions", json={"action_type": "teleport"})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "unknown_action_type"
    resp = p.http.post(f"{api}/api/actions", json={})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_request"
    assert not list(r.scan_iter(match=f"{settings.redis_prefix}at:*"))


def test_start_action_needs_a_token(api):
    r = requests.post(f"{api}/api/actions", json={"action_type": "coin_pickup"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
