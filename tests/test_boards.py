"""Boards in the domain: counting at the boundary, exactly once per board and period,
closing behind the watermark, final standings and their revision, and navigation.

The acceptance clock is injected by writing each submission's ``accepted_at`` (the server's
clock at its 202) before its batch is applied; the closing job is given its ``now``.
"""

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from scoreboard import closing, navigation
from scoreboard.boards import Board, parse_boards, to_ms
from scoreboard.errors import Refused
from scoreboard.moderation import Moderator
from scoreboard.periods import Calendar
from tests import invariants, ranks
from tests.domain import make_user, new_applier, submit

ANCHOR = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
BOARDS = parse_boards(json.dumps([
    {"id": "all-time", "window": "all_time"},
    {"id": "round", "window": "fixed", "length_s": 600, "anchor": "2026-11-30T09:00:00Z"},
    {"id": "daily", "window": "daily", "time_zone": "Europe/Berlin"},
    {"id": "season", "window": "season"},
]))
ROUND = next(b for b in BOARDS if b.id == "round")


def at(minutes: float) -> datetime:
    return ANCHOR + timedelta(minutes=minutes)


@pytest.fixture
def applier(database_url, r, settings):
    applier = dataclasses.replace(new_applier(database_url, r, settings, "boards"), boards=BOARDS)
    yield applier
    applier.engine.dispose()


@pytest.fixture
def moderator(applier):
    return Moderator(applier.engine, applier.redis, applier.scripts, applier.keys, 60, 5)


def accept_at(applier, settings, user_id, delta, when: datetime, **kw):
    """A submission accepted at ``when`` (its batch is left open)."""
    accepted = submit(applier, settings, user_id, delta, **kw)
    applier.redis.hset(applier.keys.submission(accepted.submission_id), "accepted_at", to_ms(when))
    # the batch was opened no later than its submissions were accepted (the closing watermark)
    applier.redis.zadd(applier.keys.batches, {accepted.batch_id: to_ms(when)}, xx=True, lt=True)
    return accepted


def result_of(applier, accepted) -> dict:
    return orjson.loads(applier.redis.hget(applier.keys.submission(accepted.submission_id), "result"))


def scores(db, board, period):
    with db.cursor() as cur:
        cur.execute("SELECT user_id, score FROM board_scores WHERE board = %s AND period = %s", (board, period))
        return dict(cur.fetchall())


def calendar_of(applier) -> Calendar:
    with applier.engine.connect() as conn:
        return Calendar.load(conn, BOARDS)


def close(applier, now):
    return closing.close_due(applier.engine, applier.redis, applier.scripts, applier.keys, BOARDS, 5, now=now)


def test_a_submission_counts_in_the_period_of_its_acceptance_even_when_applied_later(applier, settings, db, r):
    a, b = make_user(db), make_user(db)
    early = accept_at(applier, settings, a, 5, at(9.99))  # round 0900, just before its end
    late = accept_at(applier, settings, b, 7, at(10))  # exactly on the boundary: the next round
    again = accept_at(applier, settings, a, 1, at(10.5))
    assert len({early.batch_id, late.batch_id, again.batch_id}) == 1
    applier.apply_batch(early.batch_id)  # applied after 09:10, in one batch
    assert scores(db, "round", "20261130T0900Z") == {a: 5}
    assert scores(db, "round", "20261130T0910Z") == {b: 7, a: 1}
    assert scores(db, "daily", "2026-11-30") == {a: 6, b: 7}
    places = result_of(applier, early)["boards"]
    assert places["round"] == {"period": "20261130T0900Z", "score": 5, "rank": 1, "previous_rank": None}
    # ranks are places on the board as the batch left it: b's 7 came in the same batch
    assert places["daily"] == {"period": "2026-11-30", "score": 5, "rank": 2, "previous_rank": None}
    assert "season" not in places  # no season open: the season board has no period
    later = result_of(applier, again)["boards"]
    assert later["round"] == {"period": "20261130T0910Z", "score": 1, "rank": 2, "previous_rank": None}
    assert later["daily"]["previous_rank"] == 2 and later["daily"]["score"] == 6  # its place after `early`
    with db.cursor() as cur:
        cur.execute("SELECT counted_on FROM score_history ORDER BY id")
        assert [row[0] for row in cur.fetchall()] == [
            ["all-time/all", "round/20261130T0900Z", "daily/2026-11-30"],
            ["all-time/all", "round/20261130T0910Z", "daily/2026-11-30"],
            ["all-time/all", "round/20261130T0910Z", "daily/2026-11-30"]]
    invariants.check(db, r, applier.keys.prefix)


def test_a_batch_applied_twice_counts_once_on_every_board(applier, settings, db, r):
    uid = make_user(db)
    first = accept_at(applier, settings, uid, 4, at(1))
    accept_at(applier, settings, uid, 6, at(2))
    subs = applier.submissions.seal(first.batch_id)
    applier.apply_submissions(subs, first.batch_id)
    applier.apply_submissions(subs, first.batch_id)  # the worker died after commit: retried
    assert scores(db, "round", "20261130T0900Z") == {uid: 10}
    assert ranks.ranked(r, applier.keys, "round", "20261130T0900Z") == {uid: 10}
    invariants.check(db, r, applier.keys.prefix)


def test_ties_in_a_period_go_to_who_reached_the_score_first_there(applier, settings, db, r):
    a, b, c = make_user(db), make_user(db), make_user(db)
    for uid in (b, a):  # b reaches 10 first in the round
        applier.apply_batch(accept_at(applier, settings, uid, 10, at(1)).batch_id)
    applier.apply_batch(accept_at(applier, settings, c, 20, at(2)).batch_id)
    reader = navigation.Reader(applier.engine, r, applier.scripts, applier.keys, navigation.Cursors("k"))
    view = navigation.resolve(applier.engine, calendar_of(applier), "round", None, at(5))
    page = reader.page(view, 10, None)
    assert [(e["user_id"], e["rank"], e["score"]) for e in page["entries"]] == [(c, 1, 20), (b, 2, 10), (a, 2, 10)]


def test_a_period_closes_once_the_watermark_passes_its_end(applier, settings, db, r):
    a, b = make_user(db), make_user(db)
    applier.apply_batch(accept_at(applier, settings, a, 3, at(1)).batch_id)
    pending = accept_at(applier, settings, b, 8, at(9))  # accepted before the end, applied after it
    report = close(applier, at(11))
    assert report.waiting == ["round/20261130T0900Z"] and report.closed == []
    view = navigation.resolve(applier.engine, calendar_of(applier), "round", "20261130T0900Z", at(11))
    assert view.state == "closing"
    applier.apply_batch(pending.batch_id)
    report = close(applier, at(11))
    assert report.closed == ["round/20261130T0900Z"]
    assert close(applier, at(11)).closed == [], "closes once"
    view = navigation.resolve(applier.engine, calendar_of(applier), "round", "20261130T0900Z", at(12))
    assert view.state == "final"
    with db.cursor() as cur:
        cur.execute("SELECT user_id, final_rank FROM board_scores WHERE board = 'round' ORDER BY final_rank")
        assert cur.fetchall() == [(b, 1), (a, 2)]
    # a late submission (accepted after the end) is in the new round, not the final one
    applier.apply_batch(accept_at(applier, settings, a, 100, at(12)).batch_id)
    assert scores(db, "round", "20261130T0900Z") == {a: 3, b: 8}
    assert scores(db, "round", "20261130T0910Z") == {a: 100}
    invariants.check(db, r, applier.keys.prefix)


def test_a_failed_batch_does_not_hold_the_close_and_a_requeue_after_it_changes_nothing_final(
        applier, settings, db, r):
    a, b = make_user(db), make_user(db)
    applier.apply_batch(accept_at(applier, settings, b, 1, at(2)).batch_id)
    stuck = accept_at(applier, settings, a, 5, at(3))
    applier.submissions.mark_failed(stuck.batch_id, b'{"code":"apply_failed","message":"x"}')
    assert close(applier, at(11)).closed == ["round/20261130T0900Z"]
    applier.apply_batch(stuck.batch_id)  # an admin requeues it from the dashboard
    assert scores(db, "round", "20261130T0900Z") == {b: 1}, "the final period takes nothing more"
    assert scores(db, "daily", "2026-11-30") == {a: 5, b: 1}
    assert result_of(applier, stuck)["state"] == "applied"
    invariants.check(db, r, applier.keys.prefix)


def test_a_revert_after_the_close_corrects_the_standings_and_stamps_revised_at(applier, moderator, settings, db, r):
    admin, cheat, honest = make_user(db), make_user(db), make_user(db)
    applier.apply_batch(accept_at(applier, settings, honest, 5, at(1)).batch_id)
    applier.apply_batch(accept_at(applier, settings, cheat, 8, at(2), action_type="coin_pickup",
                                  elapsed_ms=1).batch_id)  # too fast: flagged
    close(applier, at(11))
    with db.cursor() as cur:
        cur.execute("SELECT id FROM score_flags WHERE user_id = %s", (cheat,))
        [(flag_id,)] = cur.fetchall()
    moderator.resolve(flag_id, "revert", admin)
    with db.cursor() as cur:
        cur.execute("SELECT user_id, score, final_rank FROM board_scores WHERE board = 'round' ORDER BY final_rank")
        assert cur.fetchall() == [(honest, 5, 1), (cheat, 0, 2)]
        cur.execute("SELECT revised_at IS NOT NULL FROM board_periods WHERE board = 'round' AND key = '20261130T0900Z'")
        assert cur.fetchone()[0] is True
    view = navigation.resolve(applier.engine, calendar_of(applier), "round", "20261130T0900Z", at(12))
    assert view.state == "final" and view.revised_at is not None
    invariants.check(db, r, applier.keys.prefix)


def test_cursor_pages_never_repeat_or_skip_an_entry_that_did_not_move(applier, settings, db, r):
    users = [make_user(db) for _ in range(9)]
    for i, uid in enumerate(users):
        applier.apply_batch(accept_at(applier, settings, uid, 10 * (i + 1), at(1)).batch_id)
    reader = navigation.Reader(applier.engine, r, applier.scripts, applier.keys, navigation.Cursors("k"))
    view = navigation.resolve(applier.engine, calendar_of(applier), "round", None, at(2))
    first = reader.page(view, 3, None)
    assert [e["score"] for e in first["entries"]] == [90, 80, 70] and first["total"] == 9
    # between pages: the 2nd moves to the top, the 7th (on the next page) moves above the page's end,
    # and the last one (on a later page) climbs into the middle of the next one
    applier.apply_batch(accept_at(applier, settings, users[7], 100, at(3)).batch_id)  # 80 -> 180
    applier.apply_batch(accept_at(applier, settings, users[2], 50, at(3)).batch_id)  # 30 -> 80
    applier.apply_batch(accept_at(applier, settings, users[0], 45, at(3)).batch_id)  # 10 -> 55
    seen = [e["user_id"] for e in first["entries"]]
    cursor = first["next_cursor"]
    while cursor:
        page = reader.page(view, 3, cursor)
        seen += [e["user_id"] for e in page["entries"]]
        cursor = page["next_cursor"]
    unmoved = [users[i] for i in (1, 3, 4, 5, 6, 8)]
    for uid in unmoved:
        assert seen.count(uid) == 1, f"user {uid} did not move and must be seen exactly once"
    with pytest.raises(Refused) as other:
        reader.page(dataclasses.replace(view, board=BOARDS[2]), 3, first["next_cursor"])
    assert other.value.code == "invalid_cursor"
    with pytest.raises(Refused) as garbled:
        reader.page(view, 3, first["next_cursor"][:-2] + "xx")
    assert garbled.value.code == "invalid_cursor"


def test_around_me_stays_full_at_the_edges_and_keeps_ties_around_the_caller(applier, settings, db, r):
    users = [make_user(db) for _ in range(8)]
    for i, uid in enumerate(users):
        applier.apply_batch(accept_at(applier, settings, uid, [50, 40, 40, 40, 30, 20, 10, 5][i], at(1)).batch_id)
    outsider = make_user(db)
    reader = navigation.Reader(applier.engine, r, applier.scripts, applier.keys, navigation.Cursors("k"))
    view = navigation.resolve(applier.engine, calendar_of(applier), "round", None, at(2))
    top = reader.around(view, users[0], 5)
    assert [e["user_id"] for e in top["entries"]] == users[:5] and top["me"] == {"rank": 1, "score": 50}
    bottom = reader.around(view, users[7], 5)
    assert [e["user_id"] for e in bottom["entries"]] == users[3:] and bottom["me"] == {"rank": 8, "score": 5}
    middle = reader.around(view, users[2], 3)
    assert [e["rank"] for e in middle["entries"]] == [2, 2, 2] and middle["me"]["rank"] == 2
    assert reader.around(view, outsider, 5) == {"entries": [], "total": 8, "me": None}
    assert reader.user(view, users[4]) == {"rank": 5, "score": 30, "total": 8, "percentile": 50.0}
    assert reader.user(view, users[0])["percentile"] == 100.0
    assert reader.user(view, outsider) == {"rank": None, "score": None, "total": 8, "percentile": None}


def test_final_periods_read_from_postgresql_page_like_redis(applier, settings, db, r):
    users = [make_user(db) for _ in range(7)]
    for i, uid in enumerate(users):
        applier.apply_batch(accept_at(applier, settings, uid, [9, 7, 7, 5, 3, 2, 1][i], at(1)).batch_id)
    close(applier, at(11))  # round 0900 is the last closed: Redis still holds it
    applier.apply_batch(accept_at(applier, settings, users[0], 1, at(21)).batch_id)
    close(applier, at(31))  # 0910 closes with nothing in it, then 0920: 0900 is read from PostgreSQL now
    assert not r.exists(applier.keys.board_ready("round", "20261130T0900Z")), "Redis let go of it"
    reader = navigation.Reader(applier.engine, r, applier.scripts, applier.keys, navigation.Cursors("k"))
    view = navigation.resolve(applier.engine, calendar_of(applier), "round", "20261130T0900Z", at(40))
    seen, cursor = [], None
    while True:
        page = reader.page(view, 3, cursor)
        seen += [(e["user_id"], e["rank"]) for e in page["entries"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [(users[0], 1), (users[1], 2), (users[2], 2), (users[3], 4), (users[4], 5), (users[5], 6),
                    (users[6], 7)]
    assert [e["user_id"] for e in reader.around(view, users[6], 3)["entries"]] == users[4:]
    assert reader.user(view, users[3]) == {"rank": 4, "score": 5, "total": 7, "percentile": 57.14}
    listed = navigation.closed_periods(applier.engine, calendar_of(applier), "round", 2, None)
    assert [p["key"] for p in listed["periods"]] == ["20261130T0920Z", "20261130T0910Z"]
    assert listed["periods"][0]["winner"]["user_id"] == users[0] and listed["periods"][0]["winner"]["score"] == 1
    assert listed["periods"][1]["winner"] is None  # a round in which nobody played still closes
    rest = navigation.closed_periods(applier.engine, calendar_of(applier), "round", 2, int(listed["next_cursor"]))
    assert [p["key"] for p in rest["periods"]] == ["20261130T0900Z"] and rest["next_cursor"] is None
    assert rest["periods"][0]["winner"]["user_id"] == users[0] and rest["periods"][0]["winner"]["score"] == 9


def test_seasons_refuse_overlap_and_time_travel_and_count_only_inside(applier, settings, db, r):
    calendar = calendar_of(applier)
    navigation.add_season(applier.engine, calendar, "season", "s1", at(0), at(30), at(-1))
    for key, start, end, code in (("s2", at(20), at(40), "period_overlap"), ("s1", at(40), at(50), "period_overlap"),
                                  ("s3", at(50), at(45), "invalid_request"), ("s4", at(-60), at(-30), "invalid_request")):
        with pytest.raises(Refused) as refused:
            navigation.add_season(applier.engine, calendar_of(applier), "season", key, start, end, at(-1))
        assert refused.value.code == code, key
    with pytest.raises(Refused) as not_a_season:
        navigation.add_season(applier.engine, calendar, "round", "x", at(40), at(50), at(-1))
    assert not_a_season.value.code == "invalid_request"
    uid = make_user(db)
    applier.apply_batch(accept_at(applier, settings, uid, 4, at(10)).batch_id)
    applier.apply_batch(accept_at(applier, settings, uid, 6, at(35)).batch_id)  # between seasons
    assert scores(db, "season", "s1") == {uid: 4}
    listing = {b["id"]: b for b in navigation.listing(calendar_of(applier), at(35))}
    assert listing["season"]["period"] is None and listing["season"]["next_reset_at"] is None
    assert listing["round"]["period"]["key"] == "20261130T0930Z"
    assert listing["all-time"]["period"]["ends_at"] is None and listing["all-time"]["next_reset_at"] is None


def test_unknown_boards_and_periods(applier):
    calendar = calendar_of(applier)
    for board, key, code in (("nope", None, "unknown_board"), ("round", "20261130T0901Z", "unknown_period"),
                             ("round", "20991130T0900Z", "unknown_period"), ("daily", "2026-13-01", "unknown_period")):
        with pytest.raises(Refused) as refused:
            navigation.resolve(applier.engine, calendar, board, key, at(5))
        assert refused.value.code == code, (board, key)
    assert navigation.resolve(applier.engine, calendar, "season", None, at(5)) is None


def test_a_ban_takes_the_user_off_every_open_period_and_a_final_one_keeps_its_ranks(applier, moderator, settings,
                                                                                       db, r):
    admin, a, b = make_user(db), make_user(db), make_user(db)
    applier.apply_batch(accept_at(applier, settings, a, 9, at(1)).batch_id)
    applier.apply_batch(accept_at(applier, settings, b, 4, at(2)).batch_id)
    close(applier, at(11))
    applier.apply_batch(accept_at(applier, settings, a, 2, at(12)).batch_id)
    moderator.ban(a, admin)
    assert a not in ranks.ranked(r, applier.keys, "round", "20261130T0910Z")
    assert a not in ranks.ranked(r, applier.keys, "daily", "2026-11-30")
    reader = navigation.Reader(applier.engine, r, applier.scripts, applier.keys, navigation.Cursors("k"))
    view = navigation.resolve(applier.engine, calendar_of(applier), "round", "20261130T0900Z", at(12))
    page = reader.page(view, 10, None)
    assert [(e["user_id"], e["rank"]) for e in page["entries"]] == [(b, 2)], "hidden, and b keeps their rank"
    invariants.check(db, r, applier.keys.prefix)


def test_every_board_uses_the_same_order_in_postgresql_and_redis(applier, settings, db, r):
    """The rebuild of a period from PostgreSQL gives the ranking batches built."""
    users = [make_user(db) for _ in range(6)]
    for i, uid in enumerate(users):
        applier.apply_batch(accept_at(applier, settings, uid, [3, 3, 1, 5, 3, 1][i], at(1)).batch_id)
    reader = navigation.Reader(applier.engine, r, applier.scripts, applier.keys, navigation.Cursors("k"))
    view = navigation.resolve(applier.engine, calendar_of(applier), "round", None, at(2))
    before = reader.page(view, 10, None)["entries"]
    closing.drop_period(r, applier.keys, "round", "20261130T0900Z", max(users))
    from scoreboard import ranking
    assert ranking.rebuild(applier.engine, r, applier.scripts, applier.keys, "round", "20261130T0900Z")
    assert reader.page(view, 10, None)["entries"] == before


def test_boards_configuration_is_checked_at_start():
    from scoreboard.settings import Settings, SettingsError
    base = {"DATABASE_URL": "postgresql://u@h/db", "REDIS_URL": "redis://h/0", "SECRET_KEY": "k" * 40}
    for bad in ('[{"id": "x", "window": "hourly"}]', '[{"id": "d", "window": "daily", "time_zone": "Mars/Base"}]',
                '[{"id": "d", "window": "daily"}, {"id": "d", "window": "weekly"}]', '[{"id": "f", "window": "fixed"}]'):
        with pytest.raises(SettingsError, match="BOARDS"):
            Settings.from_env({**base, "BOARDS": bad})
    assert [b.id for b in Settings.from_env(base).boards] == ["all-time", "daily", "weekly"]
    assert isinstance(BOARDS[1], Board) and ROUND.length_s == 600


def test_a_revert_of_an_older_final_period_shows_in_its_cached_pages(applier, moderator, settings, db, r):
    admin, cheat, honest = make_user(db), make_user(db), make_user(db)
    applier.apply_batch(accept_at(applier, settings, honest, 5, at(1)).batch_id)
    applier.apply_batch(accept_at(applier, settings, cheat, 8, at(2), action_type="coin_pickup",
                                  elapsed_ms=1).batch_id)  # too fast: flagged
    close(applier, at(21))  # 0900 and 0910 close: Redis keeps 0910 alone
    assert not r.exists(applier.keys.board_ready("round", "20261130T0900Z"))
    reader = navigation.Reader(applier.engine, r, applier.scripts, applier.keys, navigation.Cursors("k"))
    view = navigation.resolve(applier.engine, calendar_of(applier), "round", "20261130T0900Z", at(22))
    assert [(e["user_id"], e["rank"]) for e in reader.page(view, 10, None)["entries"]] == [(cheat, 1), (honest, 2)]
    with db.cursor() as cur:
        cur.execute("SELECT id FROM score_flags WHERE user_id = %s", (cheat,))
        [(flag_id,)] = cur.fetchall()
    moderator.resolve(flag_id, "revert", admin)
    page = reader.page(view, 10, None)["entries"]
    assert [(e["user_id"], e["rank"], e["score"]) for e in page] == [(honest, 1, 5), (cheat, 2, 0)]
