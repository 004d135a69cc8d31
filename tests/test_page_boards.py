"""The boards on the live page as people use them, in Chromium at a laptop and a phone size:
tabs, the period's countdown, the player's place among their neighbours, further pages,
and a period's final standings (arriving live when it closes, and read back later);
axe-core in each state, screenshots kept.

The page's web and stream processes run with this module's boards (two-hour rounds, the
open one begun an hour before the tests, and a season board besides all-time). Scores are applied by the apply stage in this process
with those boards, as a worker would; periods close through the closing job's function,
with the clock it is given (a round) or the real one (a season of a few seconds).
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from scoreboard import closing, navigation, ranking
from scoreboard.boards import parse_boards, period_at
from scoreboard.periods import Calendar
from scoreboard.redis_client import Keys
from tests.browser import WAIT_MS, Site, browsing, chromium, log_in, wait_until  # noqa: F401 (fixtures)
from tests.client import Player
from tests.domain import make_user, new_applier, submit
from tests.streams import live  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow  # drives a browser

# The open round ends an hour after the tests start: none of them sees it end by the clock.
ANCHOR = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:00Z")
BOARDS_JSON = json.dumps([{"id": "all-time", "window": "all_time"},
                          {"id": "round", "window": "fixed", "length_s": 7200, "anchor": ANCHOR},
                          {"id": "season", "window": "season"}])
BOARDS = parse_boards(BOARDS_JSON)
ROUND = BOARDS[1]


@pytest.fixture(scope="module")
def site(stack, base_env):
    s = Site(base_env, settings={"BOARDS": BOARDS_JSON})
    yield s
    s.stop()


class Scores:
    """Players and their scores on this module's boards, applied as a worker applies them."""

    def __init__(self, applier, settings, db):
        self.applier, self.settings, self.db = applier, settings, db

    def add(self, user_id: int, delta: int) -> None:
        self.applier.apply_batch(submit(self.applier, self.settings, user_id, delta).batch_id)

    def other(self, points: int) -> tuple[int, str]:
        """Another player (id, username) with ``points``."""
        uid = make_user(self.db)
        self.add(uid, points)
        with self.db.cursor() as cur:
            cur.execute("SELECT username FROM users WHERE id = %s", (uid,))
            return uid, cur.fetchone()[0]

    def warm(self) -> None:
        """Hold the open round's ranking, as the warm job does for the service's boards."""
        key = period_at(ROUND, datetime.now(timezone.utc)).key
        a = self.applier
        assert ranking.rebuild(a.engine, a.redis, a.scripts, a.keys, ROUND.id, key)

    def open_season(self, key: str, starts_at: datetime, ends_at: datetime) -> None:
        a = self.applier
        with a.engine.connect() as conn:
            calendar = Calendar.load(conn, BOARDS)
        navigation.add_season(a.engine, calendar, "season", key, starts_at, ends_at, datetime.now(timezone.utc),
                              a.redis, a.keys)

    def close_due(self, now: datetime | None = None) -> list[str]:
        a = self.applier
        return closing.close_due(a.engine, a.redis, a.scripts, a.keys, BOARDS, 5, now=now).closed


@pytest.fixture
def scores(live, database_url, r, settings, db):
    applier = dataclasses.replace(new_applier(database_url, r, settings, "ignored"), keys=Keys(settings.redis_prefix),
                                  boards=BOARDS)
    s = Scores(applier, settings, db)
    s.warm()
    yield s
    applier.engine.dispose()


def shown(page, table: str = "#scoreboard") -> list[int]:
    """The user ids of a table's rows, top to bottom."""
    return page.eval_on_selector_all(f"{table} tbody tr", "rows => rows.map((r) => Number(r.dataset.userId))")


def showing(page, ids: list[int], table: str = "#scoreboard") -> None:
    wait_until(page, f"""(ids) => JSON.stringify([...document.querySelectorAll('{table} tbody tr')]
        .map((r) => Number(r.dataset.userId))) === JSON.stringify(ids)""", ids)


def text(page, selector: str) -> str:
    return page.text_content(selector).strip()


# ---------------------------------------------------------------- tabs and periods


def test_switching_a_tab_shows_that_boards_entries(scores, site, browsing):
    (a, _), (b, _) = scores.other(30), scores.other(20)
    now = datetime.now(timezone.utc)
    scores.open_season("spring", now - timedelta(minutes=1), now + timedelta(days=2))
    c, _ = scores.other(10)  # the only one who scored in the season
    page = browsing.page()
    page.goto(site.base + "/")
    showing(page, [a, b, c])
    page.wait_for_selector("#period-name:text('All-time totals')", timeout=WAIT_MS)  # the boards are read
    tabs = page.eval_on_selector_all('#board-tabs[role="tablist"] [role="tab"]',
                                     "ts => ts.map((t) => [t.textContent, t.getAttribute('aria-selected'), t.tabIndex])")
    assert tabs == [["All time", "true", 0], ["Round", "false", -1], ["Season", "false", -1]]
    assert page.get_attribute("#board-panel", "aria-labelledby") == "tab-all-time"
    assert text(page, "#period").startswith("All-time totals")
    browsing.check(page, "all-time")

    page.focus("#tab-all-time")
    page.keyboard.press("End")  # the keyboard moves along the tabs and chooses
    showing(page, [c])
    assert page.evaluate("document.activeElement.id") == "tab-season"
    assert page.get_attribute("#tab-season", "aria-selected") == "true"
    assert page.get_attribute("#board-panel", "aria-labelledby") == "tab-season"
    assert page.url.endswith("/?board=season")
    assert page.get_attribute("#display-link", "href") == f"{site.base}/?display=1&board=season"
    assert text(page, "#period-name") == "Season spring" and text(page, "#countdown").startswith("ends in 1 d 23 h")
    assert text(page, "#board-title") == "Top 10 · Season"
    browsing.check(page, "season")

    page.keyboard.press("ArrowLeft")
    showing(page, [a, b, c])
    assert page.get_attribute("#tab-round", "aria-selected") == "true" and " to " in text(page, "#period-name")

    page.goto(site.base + "/?board=season")  # a chosen board is kept in the address
    showing(page, [c])
    assert page.get_attribute("#tab-season", "aria-selected") == "true"


def test_the_countdown_counts_down_and_between_seasons_says_so(scores, site, browsing):
    scores.other(5)
    page = browsing.page()
    page.goto(site.base + "/?board=round")
    page.wait_for_selector("#countdown:text('ends in')", timeout=WAIT_MS)
    first = text(page, "#countdown")
    later = wait_until(page, "(first) => { const t = document.getElementById('countdown').textContent;"
                             " return t !== first && t; }", first)
    assert later.startswith("ends in") and "min" in first
    browsing.check(page, "round")
    page.click("#tab-season")
    page.wait_for_selector("#period-name:text('No season running')", timeout=WAIT_MS)
    page.wait_for_selector("#board-note:text('No season running')", timeout=WAIT_MS)
    assert shown(page) == [] and page.is_hidden("#last-period")
    browsing.check(page, "no-season")


def test_the_big_screen_shows_the_board_it_is_given(scores, site, browsing):
    a, _ = scores.other(12)
    page = browsing.page()
    page.goto(site.base + "/?display=1&board=round")
    showing(page, [a])
    assert text(page, "#board-title") == "Top 10 · Round"
    page.wait_for_selector("#countdown:text('ends in')", timeout=WAIT_MS)
    assert page.is_hidden("#board-tabs")
    visible = page.eval_on_selector_all("input, select, button, a", "els => els.filter(e => e.offsetParent).length")
    assert visible == 0, "no controls on the big screen"
    browsing.check(page, "display-round")


# ---------------------------------------------------------------- the player's place


def test_a_player_outside_the_top_10_sees_their_neighbours_and_the_gap(scores, site, browsing):
    others = [scores.other(points) for points in range(200, 90, -10)]  # 200 ... 100: eleven players
    me = Player(site.base)
    scores.add(me.id, 40)  # 12th of 12
    page = browsing.page()
    page.goto(site.base + "/?board=round")
    log_in(page, me.username, me.password)
    page.wait_for_selector("#around-summary:text('You are 12th of 12 with 40 points.')", timeout=WAIT_MS)
    page.wait_for_selector("#around-gap:text('70 points behind 10th place')", timeout=WAIT_MS)
    tenth = others[9][1]
    assert text(page, "#around-gap") == f"70 points behind 10th place ({tenth})."
    showing(page, [others[7][0], others[8][0], others[9][0], others[10][0], me.id], "#around-table")
    mine = f'#around-table tr[data-user-id="{me.id}"]'
    assert page.get_attribute(mine, "aria-current") == "true" and text(page, f"{mine} .you") == "you"
    assert "mine" in page.get_attribute(mine, "class")
    assert page.query_selector("#scoreboard tr.mine") is None, "not in the top 10"
    browsing.check(page, "around-me")

    scores.add(me.id, 65)  # 105: 11th, 5 behind the 10th; the page hears of it on the stream
    page.wait_for_selector("#around-summary:text('You are 11th of 12 with 105 points.')", timeout=WAIT_MS)
    page.wait_for_selector("#around-gap:text('5 points behind 10th place')", timeout=WAIT_MS)
    assert page.text_content("#my-score") == "105"

    scores.add(me.id, 100)  # 205: first, the row in the top 10 is marked and no gap is left
    page.wait_for_selector(f'#scoreboard tr.mine[data-user-id="{me.id}"][data-rank="1"]', timeout=WAIT_MS)
    page.wait_for_selector("#around-summary:text('You are 1st of 12 with 205 points.')", timeout=WAIT_MS)
    assert page.is_hidden("#around-gap") and page.is_hidden("#around-table")
    browsing.check(page, "around-me-top")


def test_show_more_pages_the_board_below_the_top_10(scores, site, browsing):
    players = [scores.other(points) for points in range(130, 0, -10)]  # thirteen players
    ids = [uid for uid, _ in players]
    page = browsing.page()
    page.goto(site.base + "/?board=round")
    showing(page, ids[:10])
    page.click("#show-more")
    showing(page, ids[10:], "#more-table")
    assert page.eval_on_selector_all("#more-table tbody tr", "rs => rs.map((r) => r.dataset.rank)") == ["11", "12", "13"]
    page.wait_for_selector("#show-more", state="hidden", timeout=WAIT_MS)
    assert "That is everyone." in text(page, "#more-note")
    browsing.check(page, "more")


# ---------------------------------------------------------------- closing periods


def test_a_round_that_closes_live_shows_its_final_standings_then_the_new_round(scores, site, browsing):
    (a, a_name), (b, _) = scores.other(30), scores.other(20)
    current = period_at(ROUND, datetime.now(timezone.utc))
    page = browsing.page()
    page.goto(site.base + "/?board=round")
    showing(page, [a, b])
    page.wait_for_selector("#period-name:text(' to ')", timeout=WAIT_MS)  # the boards are read
    before = text(page, "#period-name")
    assert page.is_hidden("#last-period"), "no round has closed yet"

    later = current.ends_at + timedelta(seconds=1)
    assert scores.close_due(now=later) == [f"round/{current.key}"]
    page.wait_for_selector('#last-period[data-fresh="true"][open]', timeout=WAIT_MS)
    showing(page, [a, b], "#last-table")
    assert text(page, "#last-title") == f"Just ended: {before}"
    assert text(page, "#last-winner") == f"won by {a_name} with 30 points"
    page.wait_for_selector("#board-note:text('No scores yet in this period')", timeout=WAIT_MS)
    assert shown(page) == [] and text(page, "#period-name") != before
    wait_until(page, "(name) => document.getElementById('announcer').textContent.includes(name)", a_name)
    browsing.check(page, "round-closed")


def test_a_season_that_ends_shows_its_final_standings_live_and_after_a_reload(scores, site, browsing):
    now = datetime.now(timezone.utc)
    ends = now + timedelta(seconds=4)
    scores.open_season("sprint", now - timedelta(minutes=1), ends)
    (a, a_name), (b, _) = scores.other(12), scores.other(7)
    page = browsing.page()
    page.goto(site.base + "/?board=season")
    showing(page, [a, b])
    page.wait_for_selector("#countdown:text('ended')", timeout=WAIT_MS)  # the season's own end, on the clock
    while datetime.now(timezone.utc) <= ends:
        time.sleep(0.1)
    assert scores.close_due() == ["season/sprint"]
    page.wait_for_selector('#last-period[data-fresh="true"][open]', timeout=WAIT_MS)
    showing(page, [a, b], "#last-table")
    assert text(page, "#last-winner") == f"won by {a_name} with 12 points"
    page.wait_for_selector("#board-note:text('No season running')", timeout=WAIT_MS)
    assert text(page, "#period-name") == "No season running" and shown(page) == []
    browsing.check(page, "season-closed")

    page.reload()  # the standings are kept: read back from the API
    page.wait_for_selector('#last-period[data-fresh="false"]:not([open])', timeout=WAIT_MS)
    assert text(page, "#last-title") == "Final standings: Season sprint"
    page.click("#last-period summary")
    showing(page, [a, b], "#last-table")
    assert page.eval_on_selector_all("#last-table tbody tr", "rs => rs.map((r) => r.dataset.rank)") == ["1", "2"]
    browsing.check(page, "season-final")
