"""The live board page as people use it, in Chromium at a laptop and a phone size: each
test is one thing a person would recognise, checked with axe-core in each state it shows,
with a screenshot of each kept under the test log directory (``screenshots/``)."""

from __future__ import annotations

import pytest
import requests

from tests.browser import WAIT_MS, browsing, chromium, log_in, row, site, wait_until  # noqa: F401 (fixtures)
from tests.client import Player
from tests.sse import Stream
from tests.streams import live  # noqa: F401 (fixture)
from tests.test_admin import make_admin

pytestmark = pytest.mark.slow  # drives a browser


def live_state(page) -> None:
    page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT_MS)


# ---------------------------------------------------------------- 1. anyone can watch


def test_an_anonymous_viewer_sees_a_score_arrive(live, site, browsing):
    player = Player(site.base)
    page = browsing.page()
    page.goto(site.base + "/")
    live_state(page)
    page.wait_for_selector("#board-note:text('No scores yet')", timeout=WAIT_MS)
    assert page.is_visible("#sign-in") and not page.is_visible("#signed-in")
    browsing.check(page, "empty")
    player.earn(42)
    page.wait_for_selector(row(player.username, 42), timeout=WAIT_MS)
    assert page.get_attribute(row(player.username), "data-rank") == "1"
    assert page.is_hidden("#board-note")
    browsing.check(page, "a-score-arrived")


def test_the_big_screen_shows_the_board_alone_in_large_type(live, site, browsing):
    players = [Player(site.base) for _ in range(3)]
    for points, player in zip((30, 20, 10), players):
        player.earn(points)
    page = browsing.page()
    page.goto(site.base + "/?display=1")
    live_state(page)
    page.wait_for_selector(row(players[2].username, 10), timeout=WAIT_MS)
    visible = page.eval_on_selector_all("input, select, button, a", "els => els.filter(e => e.offsetParent).length")
    assert visible == 0, "no controls on the big screen"
    size = page.eval_on_selector(row(players[0].username), "r => parseFloat(getComputedStyle(r).fontSize)")
    normal = 16 if browsing.size == "phone" else 30
    assert size >= normal, f"rows at {size}px"
    players[2].earn(25)
    page.wait_for_selector(row(players[2].username, 35), timeout=WAIT_MS)
    assert page.get_attribute(row(players[2].username), "data-rank") == "1"
    browsing.check(page, "display")


# ---------------------------------------------------------------- 2. changes that can be followed


def test_a_moved_row_slides_to_its_place_with_its_mark(live, site, browsing):
    a, b, c = (Player(site.base) for _ in range(3))
    for points, player in ((30, a), (20, b), (10, c)):
        player.earn(points)
    page = browsing.page()
    page.goto(site.base + "/")
    page.wait_for_selector(row(c.username, 10), timeout=WAIT_MS)
    page.eval_on_selector(row(c.username), "r => { r.dataset.probe = 'same element' }")
    c.earn(25)
    moved = row(c.username, 35)
    # the row slides: an animation runs on it as soon as it shows its new score
    wait_until(page, "(sel) => { const r = document.querySelector(sel); return r && r.getAnimations().length > 0; }",
               moved)
    assert page.get_attribute(moved, "data-rank") == "1"
    assert page.get_attribute(moved, "data-probe") == "same element", "rows are kept, not rebuilt"
    assert page.get_attribute(moved, "data-move") == "up"
    assert page.text_content(f"{moved} .move") == "▲ 2" and page.text_content(f"{moved} .gain") == "+25"
    assert page.get_attribute(row(a.username), "data-move") == "down"
    assert page.text_content(f"{row(a.username)} .move") == "▼ 1"
    wait_until(page, "(name) => document.getElementById('announcer').textContent.includes(name)", c.username)
    browsing.check(page, "moved")
    wait_until(page, "(sel) => !document.querySelector(sel).dataset.move", moved)  # marks fade after a while


def test_with_reduced_motion_rows_move_without_sliding(live, site, chromium):
    from tests.browser import Browsing

    browsing = Browsing(chromium, "laptop", "reduced-motion", reduced_motion="reduce")
    try:
        a, b = Player(site.base), Player(site.base)
        a.earn(20)
        b.earn(10)
        page = browsing.page()
        page.goto(site.base + "/")
        page.wait_for_selector(row(b.username, 10), timeout=WAIT_MS)
        b.earn(15)
        page.wait_for_selector(row(b.username, 25), timeout=WAIT_MS)
        assert page.get_attribute(row(b.username), "data-move") == "up"
        assert page.evaluate("document.getAnimations().length") == 0
    finally:
        browsing.close()


# ---------------------------------------------------------------- 4. honest states


def test_an_offline_server_shows_the_offline_state(live, site, browsing):
    me = Player(site.base)
    me.earn(5)
    page = browsing.page()
    page.goto(site.base + "/")
    log_in(page, me.username, me.password)
    live_state(page)
    page.wait_for_selector("#start:not([disabled])", timeout=WAIT_MS)
    site.stop()
    try:
        page.wait_for_selector('#connection[data-state="offline"]', timeout=WAIT_MS)
        page.wait_for_selector("#updated:not([hidden])", timeout=WAIT_MS)
        assert "last updated" in page.text_content("#updated")
        assert page.get_attribute("body", "data-connection") == "offline"
        assert page.is_disabled("#start") and page.is_visible("#offline-note")
        assert page.is_visible(row(me.username, 5)), "the last board stays, dimmed"
        browsing.check(page, "offline")
        page.click("#logout")  # a call to a server that does not answer: caught, not thrown
        page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT_MS)
    finally:
        site.start()
    live_state(page)
    assert page.is_hidden("#updated")


def test_loading_is_not_an_empty_board(live, site, browsing):
    site.stream.stop()
    site.stream = None
    try:
        page = browsing.page()
        page.goto(site.base + "/")
        page.wait_for_selector('#connection[data-state="offline"]', timeout=WAIT_MS)
        assert page.text_content("#board-note") == "Loading the board…"
        browsing.check(page, "loading-offline")
    finally:
        site.start()
    page.wait_for_selector("#board-note:text('No scores yet')", timeout=WAIT_MS)


def test_a_submission_that_fails_says_so(live, site, browsing, db):
    me = Player(site.base)
    with db.cursor() as cur:  # one more point would overflow the score: the worker cannot apply it
        cur.execute("UPDATE users SET current_score = %s WHERE id = %s", (2**63 - 1, me.id))
    page = browsing.page()
    page.goto(site.base + "/")
    log_in(page, me.username, me.password)
    page.select_option("#action-type", "tap")
    page.click("#start")
    page.fill("#delta", "1")
    page.press("#delta", "Enter")
    page.wait_for_selector("#message:text('waiting for the server')", timeout=WAIT_MS)
    page.wait_for_selector("#alert:text('was not applied')", timeout=60_000)
    assert "could not apply" in page.text_content("#alert")
    browsing.check(page, "failed-submission")


def test_a_banned_player_is_told_at_once_and_cannot_play(live, site, browsing, db):
    admin, me = make_admin(site.base, db), Player(site.base)
    page = browsing.page()
    page.goto(site.base + "/")
    log_in(page, me.username, me.password)
    live_state(page)
    assert admin.http.post(f"{site.base}/api/admin/users/{me.id}/ban").status_code == 200
    page.wait_for_selector("#banned:not([hidden])", timeout=WAIT_MS)
    assert page.is_disabled("#start")
    assert page.get_attribute("body", "data-account") == "banned"
    live_state(page)  # still watching, anonymously
    other = Player(site.base)
    other.earn(3)
    page.wait_for_selector(row(other.username, 3), timeout=WAIT_MS)
    browsing.check(page, "banned")


def test_too_many_streams_is_said_and_recovers(live, site, browsing):
    me = Player(site.base)
    held = [Stream(f"http://127.0.0.1:{site.port}", me.tokens["access_token"]) for _ in range(3)]  # the cap here
    assert [s.status for s in held] == [200, 200, 200]
    page = browsing.page()
    try:
        page.goto(site.base + "/")
        log_in(page, me.username, me.password)
        page.wait_for_selector('#connection[data-state="busy"]', timeout=WAIT_MS)
        assert "too many live views" in page.text_content("#message")
        browsing.check(page, "too-many-streams")
    finally:
        for s in held:
            s.close()
    live_state(page)


def test_logging_out_leaves_no_trace_and_is_no_error(live, site, browsing):
    me = Player(site.base)
    me.earn(9)
    page = browsing.page()
    page.goto(site.base + "/")
    log_in(page, me.username, me.password)
    page.wait_for_selector(f"{row(me.username)}.mine", timeout=WAIT_MS)
    assert page.text_content(f"{row(me.username)} .you") == "you"
    browsing.check(page, "signed-in")
    page.click("#logout")
    page.wait_for_selector("#sign-in:not([hidden])", timeout=WAIT_MS)
    assert page.query_selector("#scoreboard tr.mine") is None
    assert page.text_content("#message") == "Signed out." and page.text_content("#alert") == ""
    live_state(page)
    browsing.check(page, "signed-out")


# ---------------------------------------------------------------- 5. guided play


def test_play_is_guided_from_the_first_click_to_the_score(live, site, browsing):
    page = browsing.page()
    page.goto(site.base + "/")
    live_state(page)
    assert page.get_attribute("link[rel=icon]", "href") == "/static/favicon.svg"
    assert requests.get(site.base + "/static/favicon.svg").status_code == 200

    page.click("#switch-mode")  # register: the browser may offer a new password
    assert page.get_attribute("#password", "autocomplete") == "new-password"
    page.fill("#username", "no spaces allowed")
    page.fill("#password", "correct horse battery")
    page.press("#password", "Enter")
    assert page.text_content("#alert") == "Usernames are 3 to 32 letters, digits, “.”, “_” or “-”."
    assert page.get_attribute("#username", "aria-invalid") == "true"
    browsing.check(page, "register-error")
    name = f"guided{browsing.size}"
    page.fill("#username", name)
    page.press("#password", "Enter")
    page.wait_for_selector("#signed-in:not([hidden])", timeout=WAIT_MS)

    labels = page.eval_on_selector_all("#action-type option", "os => os.map(o => o.textContent)")
    assert "Level complete" in labels and "Coin pickup" in labels
    page.select_option("#action-type", "level_complete")  # 10 to 1000 points, 5 s at least
    page.click("#start")
    page.wait_for_selector("#timer:not([hidden])", timeout=WAIT_MS)
    assert page.is_disabled("#action-type"), "the action type is locked while the action runs"
    assert (page.get_attribute("#delta", "min"), page.get_attribute("#delta", "max")) == ("10", "1000")
    assert page.is_disabled("#submit") and page.text_content("#submit").startswith("Submit in")
    assert "Fastest honest time: 5 s" in page.text_content("#timer-help")
    browsing.check(page, "timer")
    page.wait_for_selector("#submit:not([disabled])", timeout=WAIT_MS)
    page.fill("#delta", "5000")
    page.press("#delta", "Enter")
    assert page.text_content("#alert") == "Level complete earns 10 to 1,000 points, not 0."
    page.fill("#delta", "120")
    page.press("#delta", "Enter")
    page.wait_for_selector("#message:text('+120 points: score 120, 1st.')", timeout=WAIT_MS)
    page.wait_for_selector(row(name, 120), timeout=WAIT_MS)
    assert page.text_content("#my-score") == "120" and page.text_content("#my-rank") == "1st"

    page.select_option("#action-type", "penalty")
    page.click("#start")
    page.fill("#delta", "-20")
    page.press("#delta", "Enter")
    page.wait_for_selector("#message:text('-20 points: score 100')", timeout=WAIT_MS)
    assert "+-" not in page.text_content("body")
    browsing.check(page, "played")

    if browsing.size == "phone":
        small = page.eval_on_selector_all(
            "button, input, select, a", "els => els.filter(e => e.offsetParent)"
            ".map(e => [e.id || e.textContent, e.getBoundingClientRect().height]).filter(([, h]) => h < 44)")
        assert not small, f"touch targets under 44 px: {small}"
