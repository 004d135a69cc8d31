"""Boards and their periods: which period of a board holds a given instant, and its key.

A board ranks the same submissions over its own window (``WINDOWS``): one period that
never ends (``all_time``), calendar days, ISO weeks or months in the board's IANA time
zone (``daily``, ``weekly``, ``monthly``), back-to-back rounds of ``length_s`` seconds from
an ``anchor`` (``fixed``), or seasons that admins set (``season``). This module only
computes; it reads nothing and stores nothing. Every instant it returns is aware and in UTC.

A calendar period starts at its first local midnight: when that midnight does not exist
(a DST gap at midnight), at the first instant of the local day. So a Berlin day in late
March lasts 23 hours and one in late October 25.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from scoreboard.errors import Refused

WINDOWS = ("all_time", "daily", "weekly", "monthly", "fixed", "season")
CALENDAR_WINDOWS = ("daily", "weekly", "monthly")
BOARD_ID = re.compile(r"[a-z0-9-]{1,32}")
SEASON_KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ALL_TIME_ID = "all-time"
ALL_TIME_KEY = "all"
MIN_LENGTH_S = 60
MAX_LENGTH_S = 10 * 365 * 86400

_MS = timedelta(milliseconds=1)
_TINY = timedelta(microseconds=1)
_DAY_KEY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_WEEK_KEY = re.compile(r"(\d{4})-W(\d{2})")
_MONTH_KEY = re.compile(r"(\d{4})-(\d{2})")
_FIXED_KEY = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})?Z")


@dataclass(frozen=True)
class Board:
    """One configured board.

    Attributes:
        id: 1-32 characters ``[a-z0-9-]``.
        window: one of ``WINDOWS``.
        time_zone: IANA name of the zone of the calendar windows (``UTC`` for the others).
        length_s: seconds of one period (``fixed`` only).
        anchor: the start of one period, aware, in UTC (``fixed`` only).
    """

    id: str
    window: str
    time_zone: str = "UTC"
    length_s: int | None = None
    anchor: datetime | None = None

    @property
    def zone(self) -> ZoneInfo:
        """The board's time zone."""
        return ZoneInfo(self.time_zone)


@dataclass(frozen=True)
class Period:
    """One period of a board: from ``starts_at`` included to ``ends_at`` excluded.

    Attributes:
        key: the period's key on its board (``all``, ``2026-11-30``, ``2026-W49``, ...).
        starts_at: aware, in UTC (``EPOCH`` for the all-time period).
        ends_at: aware, in UTC; None for a period that never ends.
    """

    key: str
    starts_at: datetime
    ends_at: datetime | None

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` (aware) falls in this period."""
        return self.starts_at <= instant and (self.ends_at is None or instant < self.ends_at)

    @property
    def starts_at_ms(self) -> int:
        """``starts_at`` in unix milliseconds."""
        return to_ms(self.starts_at)

    @property
    def ends_at_ms(self) -> int | None:
        """``ends_at`` in unix milliseconds, None when the period never ends."""
        return None if self.ends_at is None else to_ms(self.ends_at)


DEFAULT_BOARDS: tuple[Board, ...] = (
    Board(ALL_TIME_ID, "all_time"),
    Board("daily", "daily"),
    Board("weekly", "weekly"),
)
ALL_TIME_PERIOD = Period(ALL_TIME_KEY, EPOCH, None)


def to_ms(instant: datetime) -> int:
    """Unix milliseconds of an aware ``instant`` (floored)."""
    return (instant - EPOCH) // _MS


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"instant {instant!r} has no time zone")
    return instant.astimezone(timezone.utc)


# -- configuration ---------------------------------------------------------------------

_KEYS = {"id", "window", "time_zone", "length_s", "anchor"}


def parse_boards(raw: str | None) -> tuple[Board, ...]:
    """Build the boards from ``BOARDS``, a JSON list of ``{"id", "window", ...}`` objects.

    ``all-time`` is always there: when the list lacks it, it comes first.

    Args:
        raw: the JSON text; None or empty for ``DEFAULT_BOARDS``.

    Returns:
        The boards in the order given.

    Raises:
        ValueError: the text is not a JSON list of valid boards; the message names the
            entry and what is wrong with it.
    """
    if raw is None or not raw.strip():
        return DEFAULT_BOARDS
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise ValueError("must be a JSON list of boards")
    boards: list[Board] = []
    for number, entry in enumerate(entries, 1):
        board = _parse_board(entry, f"board #{number}")
        if any(b.id == board.id for b in boards):
            raise ValueError(f"board #{number}: id {board.id!r} is given twice")
        boards.append(board)
    if not any(b.id == ALL_TIME_ID for b in boards):
        boards.insert(0, DEFAULT_BOARDS[0])
    return tuple(boards)


def _parse_board(entry: Any, where: str) -> Board:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object, got {entry!r}")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    board_id = entry.get("id")
    if not isinstance(board_id, str) or not BOARD_ID.fullmatch(board_id):
        raise ValueError(f"{where}: id must be 1-32 characters a-z, 0-9 or '-', got {board_id!r}")
    where = f"board {board_id!r}"
    window = entry.get("window")
    if window not in WINDOWS:
        raise ValueError(f"{where}: unknown window {window!r} (one of {', '.join(WINDOWS)})")
    if board_id == ALL_TIME_ID and window != "all_time":
        raise ValueError(f"{where}: the all-time board's window must be all_time, got {window!r}")
    used = {"time_zone"} if window in CALENDAR_WINDOWS else {"length_s", "anchor"} if window == "fixed" else set()
    unused = sorted((_KEYS - {"id", "window"} - used) & set(entry))
    if unused:
        raise ValueError(f"{where}: a {window} board takes no {', '.join(unused)}")
    if window in CALENDAR_WINDOWS:
        return Board(board_id, window, time_zone=_parse_zone(entry.get("time_zone", "UTC"), where))
    if window == "fixed":
        return Board(board_id, window, length_s=_parse_length(entry.get("length_s"), where),
                     anchor=_parse_anchor(entry.get("anchor"), where))
    return Board(board_id, window)


def _parse_zone(name: Any, where: str) -> str:
    # available_timezones() leaves out what ZoneInfo would also open (posixrules, right/...)
    if not isinstance(name, str) or (name != "UTC" and name not in available_timezones()):
        raise ValueError(f"{where}: time_zone {name!r} is not an IANA time zone, e.g. Europe/Berlin")
    return name


def _parse_length(length: Any, where: str) -> int:
    if type(length) is not int or not MIN_LENGTH_S <= length <= MAX_LENGTH_S:
        raise ValueError(f"{where}: a fixed board needs length_s, a whole number of seconds from {MIN_LENGTH_S} "
                         f"to {MAX_LENGTH_S} (ten years), got {length!r}")
    return length


def _parse_anchor(anchor: Any, where: str) -> datetime:
    hint = 'an ISO 8601 time with its zone such as "2026-01-01T00:00:00Z"'
    try:
        if not isinstance(anchor, str):
            raise ValueError
        parsed = datetime.fromisoformat(anchor)
    except ValueError:
        raise ValueError(f"{where}: a fixed board needs anchor, {hint}, got {anchor!r}") from None
    if parsed.utcoffset() is None:
        raise ValueError(f"{where}: anchor {anchor!r} has no time zone; give {hint}")
    if parsed.microsecond:
        raise ValueError(f"{where}: anchor {anchor!r} must be on a whole second")
    return parsed.astimezone(timezone.utc)


# -- periods ---------------------------------------------------------------------------


def period_at(board: Board, instant: datetime, seasons: Sequence[Period] = ()) -> Period | None:
    """The period of ``board`` that contains ``instant``.

    Args:
        board: the board.
        instant: aware.
        seasons: the board's seasons, in any order (``season`` boards only).

    Returns:
        The period, or None on a season board when no season contains ``instant``.

    Raises:
        ValueError: ``instant`` is naive.
    """
    instant = _utc(instant)
    if board.window == "all_time":
        return ALL_TIME_PERIOD
    if board.window == "season":
        return next((s for s in seasons if s.contains(instant)), None)
    if board.window == "fixed":
        index = (instant - board.anchor) // timedelta(seconds=board.length_s)
        return _fixed_period(board, index)
    local = instant.astimezone(board.zone).date()
    first = _first_day(board.window, local)
    period = _calendar_period(board, first)
    # When the clock goes back across midnight, the hour shown again before midnight comes
    # after the next day began: it belongs to that day.
    return period if period.contains(instant) else _calendar_period(board, _following_day(board.window, first))


def period_of_key(board: Board, key: str, seasons: Sequence[Period] = ()) -> Period | None:
    """The period of ``board`` whose key is ``key``.

    Args:
        board: the board.
        key: a period key as a client sends it (anything: it is checked).
        seasons: the board's seasons (``season`` boards only).

    Returns:
        The period, or None when ``key`` is no period key of this board.
    """
    if board.window == "all_time":
        return ALL_TIME_PERIOD if key == ALL_TIME_KEY else None
    if board.window == "season":
        return next((s for s in seasons if s.key == key), None)
    try:
        period = _fixed_of_key(board, key) if board.window == "fixed" else _calendar_of_key(board, key)
    except (ValueError, OverflowError):
        return None
    # a key is the canonical spelling of a period's start; a day skipped whole is no period
    if period is None or period.key != key or period.starts_at == period.ends_at:
        return None
    return period


def next_period(board: Board, period: Period, seasons: Sequence[Period] = ()) -> Period | None:
    """The period right after ``period``.

    Returns:
        The next period; on a season board the first season starting at or after
        ``period`` ends; None on the all-time board or when there is none.
    """
    if period.ends_at is None:
        return None
    if board.window == "season":
        later = [s for s in seasons if s.starts_at >= period.ends_at]
        return min(later, key=lambda s: s.starts_at, default=None)
    return period_at(board, period.ends_at)


def previous_period(board: Board, period: Period, seasons: Sequence[Period] = ()) -> Period | None:
    """The period right before ``period``.

    Returns:
        The previous period; on a season board the last season ending at or before
        ``period`` starts; None on the all-time board or when there is none.
    """
    if board.window == "all_time":
        return None
    if board.window == "season":
        earlier = [s for s in seasons if s.ends_at is not None and s.ends_at <= period.starts_at]
        return max(earlier, key=lambda s: s.ends_at, default=None)
    return period_at(board, period.starts_at - _TINY)


def new_season(key: str, starts_at: datetime, ends_at: datetime, seasons: Sequence[Period],
               now: datetime) -> Period:
    """Check an admin's new season against the board's seasons and the clock.

    A season may start in the past but must end in the future; one that ends exactly
    when another starts does not overlap it.

    Args:
        key: the season's key (``SEASON_KEY``).
        starts_at: aware.
        ends_at: aware.
        seasons: the board's existing seasons.
        now: the server's clock, aware.

    Returns:
        The new season.

    Raises:
        Refused: ``invalid_request`` for a bad key, a naive time, an end not after the
            start or not in the future; ``period_overlap`` when it overlaps a season or
            reuses its key.
    """
    if not isinstance(key, str) or not SEASON_KEY.fullmatch(key):
        raise Refused("invalid_request", "key must be 1-32 characters a-z, 0-9 or '-', starting with a letter "
                                         "or digit.")
    try:
        season = Period(key, _utc(starts_at), _utc(ends_at))
    except ValueError:
        raise Refused("invalid_request", "starts_at and ends_at need a time zone.") from None
    if season.ends_at <= season.starts_at:
        raise Refused("invalid_request", "ends_at must be after starts_at.")
    if season.ends_at <= now:
        raise Refused("invalid_request", "ends_at is in the past: a season cannot be opened after it ends.")
    for other in seasons:
        if other.key == key:
            raise Refused("period_overlap", f"A season with the key {key!r} already exists.")
        if other.starts_at < season.ends_at and (other.ends_at is None or season.starts_at < other.ends_at):
            raise Refused("period_overlap", f"This season overlaps the season {other.key!r}.")
    return season


# -- calendar and fixed periods --------------------------------------------------------


def _first_day(window: str, day: date) -> date:
    """The first local date of the calendar period holding ``day``."""
    if window == "daily":
        return day
    if window == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _following_day(window: str, first: date) -> date:
    """The first local date of the calendar period after the one starting on ``first``."""
    if window == "daily":
        return first + timedelta(days=1)
    if window == "weekly":
        return first + timedelta(days=7)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _calendar_key(window: str, first: date) -> str:
    if window == "daily":
        return first.isoformat()
    if window == "weekly":
        year, week, _ = first.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return f"{first.year:04d}-{first.month:02d}"


def _calendar_period(board: Board, first: date) -> Period:
    zone = board.zone
    return Period(_calendar_key(board.window, first), local_day_start(zone, first),
                  local_day_start(zone, _following_day(board.window, first)))


def _calendar_of_key(board: Board, key: str) -> Period | None:
    if board.window == "daily" and (match := _DAY_KEY.fullmatch(key)):
        first = date(*map(int, match.groups()))
    elif board.window == "weekly" and (match := _WEEK_KEY.fullmatch(key)):
        year, week = map(int, match.groups())
        first = date.fromisocalendar(year, week, 1)
    elif board.window == "monthly" and (match := _MONTH_KEY.fullmatch(key)):
        first = date(*map(int, match.groups()), 1)
    else:
        return None
    return _calendar_period(board, first)


def local_day_start(zone: ZoneInfo, day: date) -> datetime:
    """The first instant of a local day.

    Args:
        zone: the time zone.
        day: the local date.

    Returns:
        In UTC: the day's midnight (the first one when the clock shows it twice), or the
        instant the clock jumps past it when a DST change skips it.
    """
    wall = datetime(day.year, day.month, day.day)
    readings = [wall.replace(tzinfo=zone, fold=fold).astimezone(timezone.utc) for fold in (0, 1)]
    real = [r for r in readings if r.astimezone(zone).replace(tzinfo=None) == wall]
    if real:
        return min(real)
    # Midnight falls in a gap; the clock jumps past it at a transition between the two
    # readings (the earlier one still has the old offset, the later one the new).
    before, after = min(readings), max(readings)
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) // 2
        if middle.astimezone(zone).utcoffset() == after.astimezone(zone).utcoffset():
            after = middle
        else:
            before = middle
    return after


def _fixed_period(board: Board, index: int) -> Period:
    length = timedelta(seconds=board.length_s)
    start = board.anchor + index * length
    return Period(_fixed_key(start), start, start + length)


def _fixed_key(start: datetime) -> str:
    minute = f"{start.year:04d}{start.month:02d}{start.day:02d}T{start.hour:02d}{start.minute:02d}"
    return f"{minute}{start.second:02d}Z" if start.second else f"{minute}Z"


def _fixed_of_key(board: Board, key: str) -> Period | None:
    match = _FIXED_KEY.fullmatch(key)
    if not match:
        return None
    start = datetime(*(int(part or 0) for part in match.groups()), tzinfo=timezone.utc)
    index, rest = divmod(start - board.anchor, timedelta(seconds=board.length_s))
    return _fixed_period(board, index) if not rest else None
