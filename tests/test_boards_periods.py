"""Boards' periods and keys (``scoreboard.boards``): pure computation, with explicit instants."""

import io
import json
import struct
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoreboard.boards import (
    DEFAULT_BOARDS, EPOCH, Board, Period, local_day_start, new_season, next_period, parse_boards, period_at,
    period_of_key, previous_period,
)
from scoreboard.errors import Refused
from scoreboard.settings import Settings, SettingsError

UTC = timezone.utc
HOUR = timedelta(hours=1)
BERLIN = "Europe/Berlin"
BASE = {"DATABASE_URL": "postgresql://u@h/db", "REDIS_URL": "redis://h:6379/0", "SECRET_KEY": "k" * 40}


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def board(window: str, time_zone: str = "UTC", **fixed) -> Board:
    return Board("b", window, time_zone, **fixed)


def length(period: Period) -> timedelta:
    return period.ends_at - period.starts_at


def test_all_time_is_one_period_that_never_ends():
    all_time = DEFAULT_BOARDS[0]
    period = period_at(all_time, at(2026, 11, 30, 9))
    assert (period.key, period.starts_at, period.ends_at, period.ends_at_ms) == ("all", EPOCH, None, None)
    assert period.contains(at(2100, 1, 1)) and not period.contains(at(1969, 12, 31))
    assert period_of_key(all_time, "all") == period and period_of_key(all_time, "2026-11-30") is None
    assert next_period(all_time, period) is None and previous_period(all_time, period) is None


@pytest.mark.parametrize("window, key, starts, ends", [
    ("daily", "2026-11-30", at(2026, 11, 30), at(2026, 12, 1)),
    ("weekly", "2026-W49", at(2026, 11, 30), at(2026, 12, 7)),
    ("monthly", "2026-11", at(2026, 11, 1), at(2026, 12, 1)),
])
def test_calendar_periods_in_utc(window, key, starts, ends):
    period = period_at(board(window), at(2026, 12, 1) - timedelta(microseconds=1))
    assert (period.key, period.starts_at, period.ends_at) == (key, starts, ends)
    assert period.starts_at_ms == int(starts.timestamp()) * 1000
    assert period_at(board(window), ends).starts_at == ends  # the end belongs to the next one


def test_a_berlin_day_follows_local_midnight():
    # 23:30 UTC on 30 November is already 1 December in Berlin (UTC+1)
    period = period_at(board("daily", BERLIN), at(2026, 11, 30, 23, 30))
    assert (period.key, period.starts_at, period.ends_at) == ("2026-12-01", at(2026, 11, 30, 23), at(2026, 12, 1, 23))


@pytest.mark.parametrize("window, instant, key, hours", [
    ("daily", at(2026, 3, 29, 12), "2026-03-29", 23),
    ("daily", at(2026, 10, 25, 12), "2026-10-25", 25),
    ("daily", at(2026, 3, 28, 12), "2026-03-28", 24),
    ("weekly", at(2026, 3, 29, 12), "2026-W13", 7 * 24 - 1),
    ("weekly", at(2026, 10, 25, 12), "2026-W43", 7 * 24 + 1),
    ("monthly", at(2026, 3, 15), "2026-03", 31 * 24 - 1),
    ("monthly", at(2026, 10, 15), "2026-10", 31 * 24 + 1),
])
def test_berlin_periods_across_a_dst_change_are_shorter_or_longer(window, instant, key, hours):
    period = period_at(board(window, BERLIN), instant)
    assert period.key == key and length(period) == hours * HOUR
    assert period.starts_at.astimezone(ZoneInfo(BERLIN)).hour == 0


def test_the_berlin_dst_days_end_and_start_at_local_midnight():
    berlin = board("daily", BERLIN)
    spring = period_at(berlin, at(2026, 3, 29, 12))
    assert (spring.starts_at, spring.ends_at) == (at(2026, 3, 28, 23), at(2026, 3, 29, 22))
    autumn = period_at(berlin, at(2026, 10, 25, 12))
    assert (autumn.starts_at, autumn.ends_at) == (at(2026, 10, 24, 22), at(2026, 10, 25, 23))
    # the hour shown twice (02:00-03:00 local) is one day
    assert period_at(berlin, at(2026, 10, 25, 0, 30)) == period_at(berlin, at(2026, 10, 25, 1, 30)) == autumn


@pytest.mark.parametrize("zone, day, first_instant", [
    ("America/Havana", date(2026, 3, 8), at(2026, 3, 8, 5)),  # 00:00 -05 jumps to 01:00 -04
    ("America/Santiago", date(2026, 9, 6), at(2026, 9, 6, 4)),  # 00:00 -04 jumps to 01:00 -03
])
def test_a_day_whose_midnight_does_not_exist_starts_at_its_first_instant(zone, day, first_instant):
    tz = ZoneInfo(zone)
    assert first_instant.astimezone(tz).replace(tzinfo=None) == datetime(day.year, day.month, day.day, 1)
    daily = board("daily", zone)
    period = period_at(daily, first_instant)
    assert (period.key, period.starts_at, length(period)) == (day.isoformat(), first_instant, 23 * HOUR)
    before = period_at(daily, first_instant - timedelta(microseconds=1))
    assert before.key == (day - timedelta(days=1)).isoformat() and before.ends_at == first_instant


def _posix_zone(rule: str) -> ZoneInfo:
    """A zone made of a POSIX TZ rule alone (a TZif file without transitions)."""
    header = b"TZif2" + bytes(15) + struct.pack(">6l", 0, 0, 0, 0, 1, 4)
    block = struct.pack(">lBB", -5 * 3600, 0, 0) + b"XST\0"
    return ZoneInfo.from_file(io.BytesIO(header + block + header + block + f"\n{rule}\n".encode()))


def test_a_gap_that_starts_before_midnight_starts_the_day_when_the_clock_jumps():
    # DST starts at 23:30 on the second Sunday of March 2026 (the 8th): 23:30 -05 becomes 00:30 -04
    zone = _posix_zone("XST5XDT,M3.2.0/23:30,M11.1.0")
    start = local_day_start(zone, date(2026, 3, 9))
    assert start == at(2026, 3, 9, 4, 30)
    assert start.astimezone(zone).replace(tzinfo=None) == datetime(2026, 3, 9, 0, 30)
    assert (start - timedelta(seconds=1)).astimezone(zone).date() == date(2026, 3, 8)


def test_a_midnight_shown_twice_starts_the_day_at_its_first_showing():
    # Havana, 1 November 2026: 01:00 -04 becomes 00:00 -05
    havana = board("daily", "America/Havana")
    period = period_at(havana, at(2026, 11, 1, 5, 30))
    assert (period.key, period.starts_at, length(period)) == ("2026-11-01", at(2026, 11, 1, 4), 25 * HOUR)


def test_the_hour_shown_again_before_midnight_belongs_to_the_day_that_began():
    # Goose Bay, 29 October 2006: 00:01 -03 became 23:01 -04 on the 28th
    goose_bay = board("daily", "America/Goose_Bay")
    again = at(2006, 10, 29, 3, 30)
    assert again.astimezone(ZoneInfo("America/Goose_Bay")).date() == date(2006, 10, 28)
    period = period_at(goose_bay, again)
    assert (period.key, period.starts_at, length(period)) == ("2006-10-29", at(2006, 10, 29, 3), 25 * HOUR)
    assert previous_period(goose_bay, period).ends_at == at(2006, 10, 29, 3)


@pytest.mark.parametrize("instant, key, monday", [
    (at(2026, 12, 31, 12), "2026-W53", at(2026, 12, 28)),
    (at(2027, 1, 3, 23, 59), "2026-W53", at(2026, 12, 28)),
    (at(2027, 1, 4), "2027-W01", at(2027, 1, 4)),
    (at(2026, 1, 1), "2026-W01", at(2025, 12, 29)),
    (at(2026, 3, 2), "2026-W10", at(2026, 3, 2)),
])
def test_iso_weeks_across_a_year_end(instant, key, monday):
    weekly = board("weekly")
    period = period_at(weekly, instant)
    assert (period.key, period.starts_at, length(period)) == (key, monday, 7 * 24 * HOUR)
    assert period_of_key(weekly, key) == period


def test_monthly_across_december():
    monthly = board("monthly")
    december = period_at(monthly, at(2026, 12, 31, 23, 59))
    assert (december.key, december.starts_at, december.ends_at) == ("2026-12", at(2026, 12, 1), at(2027, 1, 1))
    january = next_period(monthly, december)
    assert (january.key, january.ends_at) == ("2027-01", at(2027, 2, 1))
    assert previous_period(monthly, january) == december
    assert length(period_of_key(monthly, "2028-02")) == 29 * 24 * HOUR


@pytest.mark.parametrize("anchor", [at(2020, 1, 1), at(2030, 6, 1, 0, 7)])
def test_fixed_periods_run_from_the_anchor_both_ways(anchor):
    hourly = board("fixed", length_s=3600, anchor=anchor)
    period = period_at(hourly, at(2026, 11, 30, 9, 59, 59))
    expected_start = at(2026, 11, 30, 9, anchor.minute)
    if expected_start > at(2026, 11, 30, 9, 59, 59):
        expected_start -= HOUR
    assert (period.starts_at, length(period)) == (expected_start, HOUR)
    assert period.key == expected_start.strftime("%Y%m%dT%H%MZ")


def test_an_instant_on_a_fixed_boundary_belongs_to_the_later_period():
    sprint = board("fixed", length_s=600, anchor=at(2026, 1, 1))
    period = period_at(sprint, at(2026, 11, 30, 9, 10))
    assert (period.key, period.starts_at, period.ends_at) == ("20261130T0910Z", at(2026, 11, 30, 9, 10),
                                                              at(2026, 11, 30, 9, 20))
    assert period_at(sprint, at(2026, 11, 30, 9, 10) - timedelta(microseconds=1)).key == "20261130T0900Z"


def test_fixed_keys_carry_seconds_only_when_the_start_has_them():
    odd = board("fixed", length_s=90, anchor=at(2026, 1, 1))
    whole, half = period_at(odd, at(2026, 1, 1, 0, 3)), period_at(odd, at(2026, 1, 1, 0, 4, 40))
    assert (whole.key, half.key) == ("20260101T0003Z", "20260101T000430Z")
    assert period_of_key(odd, "20260101T000430Z") == half
    assert period_of_key(odd, "20260101T0004Z") is None  # not a start
    assert period_of_key(odd, "20260101T000300Z") is None  # a whole minute is written without seconds


@pytest.mark.parametrize("window, key", [
    ("daily", "2026-02-30"), ("daily", "2026-1-05"), ("daily", "20261130"), ("daily", "2026-W49"),
    ("weekly", "2026-W54"), ("weekly", "2027-W53"), ("weekly", "2026-W5"), ("monthly", "2026-13"),
    ("monthly", "2026-11-01"), ("daily", "9999-12-31"), ("daily", "0001-01-01"), ("daily", ""), ("daily", "all"),
])
def test_a_key_that_is_no_period_of_the_board_is_none(window, key):
    assert period_of_key(board(window, BERLIN), key) is None


def test_a_day_skipped_whole_is_no_period():
    apia = board("daily", "Pacific/Apia")  # 29 December 2011 was followed by the 31st
    assert period_of_key(apia, "2011-12-30") is None
    assert next_period(apia, period_of_key(apia, "2011-12-29")).key == "2011-12-31"


def test_a_naive_instant_is_refused():
    with pytest.raises(ValueError):
        period_at(board("daily"), datetime(2026, 11, 30))


ZONES = ["UTC", BERLIN, "America/Santiago", "America/Havana", "Australia/Lord_Howe", "Asia/Kathmandu",
         "Pacific/Chatham"]
ANCHORS = st.datetimes(datetime(2000, 1, 1), datetime(2050, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0))
BOARDS = st.one_of(
    st.builds(board, st.sampled_from(["daily", "weekly", "monthly"]), st.sampled_from(ZONES)),
    st.builds(lambda seconds, anchor: board("fixed", length_s=seconds, anchor=anchor), st.integers(60, 40 * 86400),
              ANCHORS),
)
INSTANTS = st.datetimes(datetime(1971, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None, database=None)
@given(BOARDS, INSTANTS)
def test_periods_round_trip_and_tile_time(some_board, instant):
    period = period_at(some_board, instant)
    assert period.contains(instant) and period.starts_at < period.ends_at
    assert period_of_key(some_board, period.key) == period
    following = next_period(some_board, period)
    assert following.starts_at == period.ends_at and following.key != period.key
    assert previous_period(some_board, following) == period


SPRING = Period("spring", at(2026, 3, 1), at(2026, 6, 1))
SUMMER = Period("summer", at(2026, 6, 1), at(2026, 9, 1))
WINTER = Period("winter", at(2026, 12, 1), at(2027, 3, 1))
SEASONS = (WINTER, SPRING, SUMMER)  # any order


def test_seasons_contain_their_instants_and_nothing_is_open_between_them():
    season = board("season")
    assert period_at(season, at(2026, 6, 1), SEASONS) == SUMMER
    assert period_at(season, at(2026, 5, 31, 23, 59), SEASONS) == SPRING
    assert period_at(season, at(2026, 10, 1), SEASONS) is None
    assert period_at(season, at(2026, 10, 1)) is None
    assert period_of_key(season, "winter", SEASONS) == WINTER and period_of_key(season, "autumn", SEASONS) is None


def test_seasons_next_and_previous_skip_the_gaps():
    season = board("season")
    assert next_period(season, SPRING, SEASONS) == SUMMER
    assert next_period(season, SUMMER, SEASONS) == WINTER
    assert next_period(season, WINTER, SEASONS) is None
    assert previous_period(season, WINTER, SEASONS) == SUMMER
    assert previous_period(season, SPRING, SEASONS) is None


NOW = at(2026, 7, 15)


@pytest.mark.parametrize("key, starts, ends, code, words", [
    ("autumn", at(2026, 8, 1), at(2026, 10, 1), "period_overlap", "summer"),
    ("big", at(2026, 1, 1), at(2027, 6, 1), "period_overlap", "overlaps"),
    ("summer", at(2027, 6, 1), at(2027, 9, 1), "period_overlap", "summer"),
    ("autumn", at(2026, 10, 1), at(2026, 9, 1), "invalid_request", "after starts_at"),
    ("autumn", at(2026, 9, 1), at(2026, 9, 1), "invalid_request", "after starts_at"),
    ("past", at(2025, 1, 1), at(2025, 6, 1), "invalid_request", "in the past"),
    ("past", at(2026, 7, 1), NOW, "invalid_request", "in the past"),
    ("Autumn", at(2026, 9, 1), at(2026, 12, 1), "invalid_request", "key"),
    ("-autumn", at(2026, 9, 1), at(2026, 12, 1), "invalid_request", "key"),
    ("a" * 33, at(2026, 9, 1), at(2026, 12, 1), "invalid_request", "key"),
    ("autumn", datetime(2026, 9, 1), at(2026, 12, 1), "invalid_request", "time zone"),
])
def test_new_season_refusals(key, starts, ends, code, words):
    with pytest.raises(Refused) as refused:
        new_season(key, starts, ends, SEASONS, NOW)
    assert refused.value.code == code and words in refused.value.message


def test_a_season_may_touch_its_neighbours_and_start_in_the_past():
    autumn = new_season("autumn", at(2026, 9, 1), at(2026, 12, 1), SEASONS, NOW)
    assert autumn == Period("autumn", at(2026, 9, 1), at(2026, 12, 1))
    assert next_period(board("season"), SUMMER, SEASONS + (autumn,)) == autumn
    running = new_season("now", at(2026, 7, 1), at(2026, 7, 20), (), NOW)
    assert running.contains(NOW)
    berlin = ZoneInfo(BERLIN)
    local = new_season("x", datetime(2027, 3, 1, 1, tzinfo=berlin), datetime(2027, 4, 1, tzinfo=berlin), SEASONS, NOW)
    assert local.starts_at == WINTER.ends_at and local.starts_at.tzinfo is UTC


def test_no_boards_configured_gives_the_default_three():
    for raw in (None, "", "  "):
        assert parse_boards(raw) == DEFAULT_BOARDS
    assert [(b.id, b.window, b.time_zone) for b in DEFAULT_BOARDS] == [
        ("all-time", "all_time", "UTC"), ("daily", "daily", "UTC"), ("weekly", "weekly", "UTC")]


def test_boards_are_read_in_order_with_all_time_added_first():
    boards = parse_boards(json.dumps([
        {"id": "daily", "window": "daily", "time_zone": BERLIN},
        {"id": "sprint", "window": "fixed", "length_s": 600, "anchor": "2026-01-01T01:00:00+01:00"},
        {"id": "season", "window": "season"},
    ]))
    assert [b.id for b in boards] == ["all-time", "daily", "sprint", "season"]
    assert boards[1].zone == ZoneInfo(BERLIN)
    assert (boards[2].length_s, boards[2].anchor) == (600, at(2026, 1, 1))
    placed = parse_boards('[{"id": "weekly", "window": "weekly"}, {"id": "all-time", "window": "all_time"}]')
    assert [b.id for b in placed] == ["weekly", "all-time"]
    assert parse_boards("[]") == DEFAULT_BOARDS[:1]


@pytest.mark.parametrize("entries, words", [
    ({"id": "daily"}, "JSON list"),
    (["daily"], "board #1 must be an object"),
    ([{"id": "Daily", "window": "daily"}], "board #1: id"),
    ([{"window": "daily"}], "board #1: id"),
    ([{"id": "x" * 33, "window": "daily"}], "board #1: id"),
    ([{"id": "d", "window": "daily", "tz": BERLIN}], "unknown key(s) tz"),
    ([{"id": "d", "window": "daily"}, {"id": "d", "window": "weekly"}], "board #2: id 'd' is given twice"),
    ([{"id": "d", "window": "hourly"}], "board 'd': unknown window 'hourly'"),
    ([{"id": "d", "window": "daily", "time_zone": "Mars/Olympus"}], "board 'd': time_zone 'Mars/Olympus'"),
    ([{"id": "d", "window": "daily", "time_zone": "posixrules"}], "not an IANA time zone"),
    ([{"id": "d", "window": "daily", "time_zone": 1}], "not an IANA time zone"),
    ([{"id": "s", "window": "fixed", "anchor": "2026-01-01T00:00:00Z"}], "board 's': a fixed board needs length_s"),
    ([{"id": "s", "window": "fixed", "length_s": 59, "anchor": "2026-01-01T00:00:00Z"}], "needs length_s"),
    ([{"id": "s", "window": "fixed", "length_s": 600.0, "anchor": "2026-01-01T00:00:00Z"}], "needs length_s"),
    ([{"id": "s", "window": "fixed", "length_s": 10**12, "anchor": "2026-01-01T00:00:00Z"}], "needs length_s"),
    ([{"id": "s", "window": "fixed", "length_s": 600}], "board 's': a fixed board needs anchor"),
    ([{"id": "s", "window": "fixed", "length_s": 600, "anchor": "soon"}], "needs anchor"),
    ([{"id": "s", "window": "fixed", "length_s": 600, "anchor": "2026-01-01T00:00:00"}], "has no time zone"),
    ([{"id": "s", "window": "fixed", "length_s": 600, "anchor": "2026-01-01T00:00:00.5Z"}], "whole second"),
    ([{"id": "w", "window": "weekly", "length_s": 600}], "a weekly board takes no length_s"),
    ([{"id": "s", "window": "fixed", "length_s": 600, "anchor": "2026-01-01T00:00:00Z", "time_zone": BERLIN}],
     "a fixed board takes no time_zone"),
    ([{"id": "s", "window": "season", "time_zone": "UTC"}], "a season board takes no time_zone"),
    ([{"id": "all-time", "window": "daily"}], "the all-time board's window must be all_time"),
])
def test_a_bad_board_is_refused_with_a_message_naming_it(entries, words):
    with pytest.raises(ValueError) as error:
        parse_boards(json.dumps(entries))
    assert words in str(error.value)


def test_boards_text_that_is_not_json_is_refused():
    with pytest.raises(ValueError, match="not JSON"):
        parse_boards("[{")


def test_settings_read_the_boards():
    assert Settings.from_env(BASE).boards == DEFAULT_BOARDS
    settings = Settings.from_env({**BASE, "BOARDS": '[{"id": "season", "window": "season"}]'})
    assert [b.id for b in settings.boards] == ["all-time", "season"]


def test_settings_read_the_boards_from_a_file(tmp_path):
    path = tmp_path / "boards.json"
    path.write_text('[{"id": "monthly", "window": "monthly", "time_zone": "Europe/Berlin"}]')
    settings = Settings.from_env({**BASE, "BOARDS": "[]", "BOARDS_FILE": str(path)})
    assert [b.id for b in settings.boards] == ["all-time", "monthly"]
    with pytest.raises(SettingsError, match="BOARDS_FILE cannot be read"):
        Settings.from_env({**BASE, "BOARDS_FILE": str(tmp_path / "missing.json")})


def test_settings_with_a_bad_board_name_boards_and_the_problem():
    with pytest.raises(SettingsError, match=r"BOARDS is not valid: board 'd': unknown window 'hourly'"):
        Settings.from_env({**BASE, "BOARDS": '[{"id": "d", "window": "hourly"}]'})
