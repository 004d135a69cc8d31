"""The stream of any board: ``?board=``, events that name their board and period, and a
period's close (``period_closed`` with the final standings, then the new period's board),
one Redis subscription serving every board."""

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from scoreboard import closing
from scoreboard.boards import parse_boards, period_at
from scoreboard.redis_client import Keys
from tests import processes
from tests.conftest import LOG_DIR
from tests.domain import make_user, new_applier, submit
from tests.sse import Stream
from tests.streams import live, mint_token, stream_environment  # noqa: F401 (fixture)

BOARDS = parse_boards(json.dumps([{"id": "all-time", "window": "all_time"},
                                  {"id": "round", "window": "fixed", "length_s": 600,
                                   "anchor": "2026-01-01T00:00:00Z"}]))
ROUND = BOARDS[1]


@pytest.fixture(scope="module")
def board_stream(base_env):
    proc, base = processes.start_stream(stream_environment(base_env, BOARDS=json.dumps(
        [{"id": "round", "window": "fixed", "length_s": 600, "anchor": "2026-01-01T00:00:00Z"}])), LOG_DIR)
    yield base
    proc.stop()


@pytest.fixture
def applier(live, database_url, r, settings):
    """The apply stage on the service's own prefix (the one the stream listens to)."""
    applier = dataclasses.replace(new_applier(database_url, r, settings, "ignored"), keys=Keys(settings.redis_prefix),
                                  boards=BOARDS)
    yield applier
    applier.engine.dispose()


def test_a_board_stream_names_its_board_and_period_and_a_close_ends_it_with_the_final_standings(
        applier, board_stream, settings, db, r):
    now = datetime.now(timezone.utc)
    current = period_at(ROUND, now)
    a, b = make_user(db), make_user(db)
    for uid, delta in ((a, 7), (b, 9)):
        applier.apply_batch(submit(applier, settings, uid, delta).batch_id)
    token = mint_token(settings, a)
    rounds, everything = Stream(board_stream, token, query={"board": "round"}), Stream(board_stream, token)
    try:
        first = rounds.until(lambda e: e.event == "scoreboard").json()
        assert (first["board"], first["period"]) == ("round", current.key)
        assert [(e["user_id"], e["rank"], e["score"]) for e in first["entries"]] == [(b, 1, 9), (a, 2, 7)]
        assert everything.until(lambda e: e.event == "scoreboard").json()["board"] == "all-time"
        later = current.ends_at + timedelta(seconds=1)
        report = closing.close_due(applier.engine, r, applier.scripts, applier.keys, BOARDS, 5, now=later)
        assert report.closed == [f"round/{current.key}"]
        closed = rounds.until(lambda e: e.event == "period_closed")
        assert closed.id is None
        data = closed.json()
        assert data["board"] == "round" and data["period"] == current.key
        assert [(e["user_id"], e["rank"], e["score"]) for e in data["entries"]] == [(b, 1, 9), (a, 2, 7)]
        following = period_at(ROUND, later)
        assert data["next_period"] == {"key": following.key, "starts_at": following.starts_at_ms,
                                       "ends_at": following.ends_at_ms}
        new = rounds.next()
        assert new.event == "scoreboard" and new.json()["period"] == following.key and new.json()["entries"] == []
        assert not [e for e in everything.seen if e.event == "period_closed"]
    finally:
        rounds.close()
        everything.close()


def test_an_unknown_board_is_refused(board_stream):
    """Before anything else is checked: the board a viewer asks for must exist."""
    refused = Stream(board_stream, "any token", query={"board": "weekly"})
    assert refused.status == 404 and refused.body["error"]["code"] == "unknown_board"


def test_scores_reach_the_viewers_of_the_board_they_counted_on(applier, board_stream, settings, db):
    uid = make_user(db)
    rounds = Stream(board_stream, mint_token(settings, uid), query={"board": "round"})
    try:
        rounds.until(lambda e: e.event == "scoreboard")
        applier.apply_batch(submit(applier, settings, uid, 4).batch_id)
        board = rounds.until(lambda e: e.event == "scoreboard" and e.json()["entries"]).json()
        assert board["entries"][0]["user_id"] == uid and board["board"] == "round"
    finally:
        rounds.close()
