"""Score submission and the job endpoint: every status code of the contract, over HTTP."""

import concurrent.futures
import secrets

import requests

from tests.client import Player, first_places, now_ms, sign, wait_applied


def snapshot(db, r, settings):
    """What a refused request must not change."""
    with db.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM score_history), (SELECT count(*) FROM action_tokens),"
                    " (SELECT coalesce(sum(current_score), 0) FROM users)")
        counts = cur.fetchone()
    subs = sorted(r.scan_iter(match=f"{settings.redis_prefix}sub:*"))
    return counts, subs


def test_accepted_submission_is_applied(api, db):
    p = Player(api)
    action = p.start()
    r = p.submit(action, 7)
    assert r.status_code == 202
    body = r.json()
    assert body["state"] == "queued" and body["status_url"] == f"/api/score/jobs/{body['job_id']}"
    done = wait_applied(p, body["job_id"])
    assert done["state"] == "applied"
    assert done["result"] == {"job_id": body["job_id"], "state": "applied", "user_id": p.id, "score": 7,
                              "rank": 1, "score_delta": 7, "flagged": False, "boards": first_places(7)}
    with db.cursor() as cur:
        cur.execute("SELECT current_score FROM users WHERE id = %s", (p.id,))
        assert cur.fetchone()[0] == 7
        cur.execute("SELECT user_id, action_id, score_change, new_score FROM score_history")
        assert cur.fetchall() == [(p.id, action["action_token"], 7, 7)]
        cur.execute("SELECT token, used FROM action_tokens")
        assert cur.fetchall() == [(action["action_token"], True)]


def test_prefer_wait_answers_with_the_applied_result(api):
    p = Player(api)
    r = p.submit(p.start(), 3, wait=10)
    assert r.status_code == 200
    body = r.json()
    assert body["state"] == "applied" and body["score"] == 3 and body["score_delta"] == 3
    assert set(body) == {"job_id", "state", "user_id", "score", "rank", "score_delta", "flagged", "boards"}


def test_missing_or_bad_jwt_is_401(api):
    p = Player(api)
    body = p.body(p.start(), 1)
    r = requests.post(f"{api}/api/score/update", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
    r = requests.post(f"{api}/api/score/update", json=body, headers={"Authorization": "Bearer x.y.z"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


def test_per_user_rate_limit_is_429_with_retry_after(limited_api, db, r, settings):
    p = Player(limited_api)
    action = p.start()
    body = p.body(action, 1, signature="0" * 64)  # refused later, but counted by the limiter first
    codes = [p.http.post(f"{limited_api}/api/score/update", json=body) for _ in range(5)]
    assert [c.status_code for c in codes] == [403] * 5
    before = snapshot(db, r, settings)
    limited = p.submit(action, 1)  # the 6th in a minute, valid or not
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert snapshot(db, r, settings) == before
    # another user is not limited by this one
    other = Player(limited_api)
    assert other.submit(other.start(), 1).status_code == 202


def test_malformed_bodies(api, db, r, settings):
    p = Player(api)
    action = p.start()
    before = snapshot(db, r, settings)
    url = f"{api}/api/score/update"
    resp = p.http.post(url, data=b'{"action_token": ', headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "malformed_json"
    good = p.body(action, 1)
    for change in ({"score_delta": 1.5}, {"score_delta": "1"}, {"score_delta": True}, {"score_delta": 2**64},
                   {"completed_at": None}, {"signature": "zz"}, {"unknown": 1}):
        resp = p.http.post(url, json={**good, **change})
        assert resp.status_code == 422, (change, resp.text)
        assert resp.json()["error"]["code"] == "invalid_request" and resp.json()["error"]["fields"]
    resp = p.http.post(url, data=b"{" + b'"a":"' + b"x" * 20000 + b'"}', headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"
    assert snapshot(db, r, settings) == before
    # the token is still good after all that
    assert p.submit(action, 1).status_code == 202


def test_token_checks_in_contract_order(api, db, r, settings):
    p, other = Player(api), Player(api)
    action = p.start("coin_pickup")
    before = snapshot(db, r, settings)
    url = f"{api}/api/score/update"

    def code(resp):
        return resp.status_code, resp.json()["error"]["code"]

    unknown = {**action, "action_token": secrets.token_urlsafe(24)}
    assert code(p.submit(unknown, 1)) == (403, "token_unknown")
    assert code(other.http.post(url, json=p.body(action, 1))) == (403, "token_unknown")
    assert code(p.submit(action, 2, signature=sign(action["secret"], action["action_token"], 3, now_ms()))) == (
        403, "bad_signature")
    future = now_ms() + (settings.actions.clock_skew + 5) * 1000
    assert code(p.submit(action, 1, completed_at=future)) == (403, "token_expired")
    before_issue = action["issued_at"] - (settings.actions.clock_skew + 5) * 1000
    assert code(p.submit(action, 1, completed_at=before_issue)) == (403, "token_expired")
    for delta in (0, 11, -1):
        assert code(p.submit(action, delta)) == (422, "invalid_score")
    # a bad signature is reported before a bad score: the first failing check answers
    assert code(p.submit(action, 11, signature="a" * 64)) == (403, "bad_signature")
    assert snapshot(db, r, settings) == before

    assert p.submit(action, 4).status_code == 202
    assert code(p.submit(action, 4)) == (403, "token_used")


def test_concurrent_replays_of_one_token_are_accepted_once(api, db):
    p = Player(api)
    action = p.start()
    body = p.body(action, 5)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: p.http.post(f"{api}/api/score/update", json=body), range(10)))
    codes = sorted(r.status_code for r in results)
    assert codes == [202] + [403] * 9
    job = next(r.json()["job_id"] for r in results if r.status_code == 202)
    assert wait_applied(p, job)["state"] == "applied"
    with db.cursor() as cur:
        cur.execute("SELECT count(*), sum(score_change) FROM score_history")
        assert cur.fetchone() == (1, 5)


def test_job_status_is_private(api):
    p, other = Player(api), Player(api)
    job = p.submit(p.start(), 1).json()["job_id"]
    assert other.job(job).status_code == 404
    assert other.job(job).json()["error"]["code"] == "not_found"
    assert p.job("0" * 32).status_code == 404
    assert requests.get(f"{api}/api/score/jobs/{job}").status_code == 401
    assert p.job(job).status_code == 200
