"""The boards over HTTP, with the default boards (all-time, daily and weekly, in UTC): the
contract's routes, bodies and error codes, end to end through the real processes."""

from datetime import datetime, timezone

import requests

from scoreboard.boards import DEFAULT_BOARDS, period_at
from tests.client import Player, first_places
from tests.test_admin import make_admin


def today() -> dict:
    now = datetime.now(timezone.utc)
    return {board.id: period_at(board, now) for board in DEFAULT_BOARDS}


def test_the_list_of_boards_with_their_periods(api):
    body = requests.get(f"{api}/api/boards").json()
    periods = today()
    assert [b["id"] for b in body["boards"]] == ["all-time", "daily", "weekly"]
    for board in body["boards"]:
        period = periods[board["id"]]
        assert board["period"] == {"key": period.key, "starts_at": period.starts_at_ms, "ends_at": period.ends_at_ms}
        assert board["next_reset_at"] == period.ends_at_ms and board["time_zone"] == "UTC"
    assert body["boards"][0]["period"]["ends_at"] is None and body["boards"][0]["window"] == "all_time"


def test_a_board_page_a_user_and_around_me(api):
    players = [Player(api) for _ in range(4)]
    for p, points in zip(players, (30, 10, 20, 10)):
        p.earn(points)
    page = requests.get(f"{api}/api/boards/daily", params={"limit": 2}).json()
    key = today()["daily"].key
    assert page["board"] == "daily" and page["period"]["key"] == key and page["period"]["state"] == "open"
    assert page["period"]["revised_at"] is None and page["total"] == 4 and page["version"] > 0
    assert [(e["user_id"], e["rank"], e["score"]) for e in page["entries"]] == [(players[0].id, 1, 30),
                                                                               (players[2].id, 2, 20)]
    rest = requests.get(f"{api}/api/boards/daily", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [(e["user_id"], e["rank"]) for e in rest["entries"]] == [(players[1].id, 3), (players[3].id, 3)]
    assert rest["next_cursor"] is None
    same = requests.get(f"{api}/api/boards/daily", params={"limit": 2, "period": key}).json()
    assert same["entries"] == page["entries"]
    user = requests.get(f"{api}/api/boards/weekly/users/{players[2].id}").json()
    assert user == {"user_id": players[2].id, "username": players[2].username, "rank": 2, "score": 20, "total": 4,
                    "percentile": 75.0}
    around = players[3].http.get(f"{api}/api/boards/daily/around/me", params={"limit": 3}).json()
    assert around["me"] == {"rank": 3, "score": 10}
    assert [e["user_id"] for e in around["entries"]] == [players[2].id, players[1].id, players[3].id]
    assert requests.get(f"{api}/api/boards/daily/around/me").status_code == 401


def test_results_and_the_profile_carry_every_board(api):
    p = Player(api)
    done = p.earn(8)
    applied = done.get("result", done)  # the 200 of Prefer: wait, or the job's status
    assert applied["boards"] == first_places(8)
    me = p.http.get(f"{api}/api/users/me").json()
    assert me["boards"] == {board: {**place, "previous_rank": None} for board, place in first_places(8).items()}


def test_the_contracts_error_codes(api, db):
    for path, params, status, code in (
        ("/api/boards/nope", {}, 404, "unknown_board"),
        ("/api/boards/daily", {"period": "2026-02-30"}, 404, "unknown_period"),
        ("/api/boards/daily", {"period": "2999-01-01"}, 404, "unknown_period"),
        ("/api/boards/daily", {"cursor": "garbled"}, 400, "invalid_cursor"),
        ("/api/boards/daily", {"limit": 0}, 422, "invalid_request"),
        ("/api/boards/all-time/users/999999999", {}, 404, "not_found"),
        ("/api/boards/nope/periods", {}, 404, "unknown_board"),
    ):
        resp = requests.get(f"{api}{path}", params=params)
        assert (resp.status_code, resp.json()["error"]["code"]) == (status, code), path
    Player(api).earn(2), Player(api).earn(1)
    cursor = requests.get(f"{api}/api/boards/weekly", params={"limit": 1}).json()["next_cursor"]
    other = requests.get(f"{api}/api/boards/daily", params={"cursor": cursor})
    assert (other.status_code, other.json()["error"]["code"]) == (400, "invalid_cursor")
    admin = make_admin(api, db)
    season = {"key": "s1", "starts_at": 0, "ends_at": 4102444800000}
    refused = admin.http.post(f"{api}/api/admin/boards/daily/periods", json=season)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_request")
    assert Player(api).http.post(f"{api}/api/admin/boards/daily/periods", json=season).status_code == 403
    assert requests.post(f"{api}/api/admin/boards/daily/periods", json=season).status_code == 401
    # beyond the last date a date can hold: a bad shape (it was a 500), on any board
    for board in ("daily", "nope"):
        far = admin.http.post(f"{api}/api/admin/boards/{board}/periods",
                              json={"key": "s1", "starts_at": 0, "ends_at": 2**53})
        assert (far.status_code, far.json()["error"]["code"]) == (422, "invalid_request")


def test_the_periods_list_is_empty_before_any_period_closed(api):
    assert requests.get(f"{api}/api/boards/daily/periods").json() == {"periods": [], "next_cursor": None}
