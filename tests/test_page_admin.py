"""The admin room as an admin uses it, in Chromium at a laptop and a phone size: reached from
the board, the flag queue (revert), bans, failed apply jobs named by their players, and the
way into the RQ dashboard; closed to everyone else. axe-core in each state, screenshots kept."""

from __future__ import annotations

import pytest
import requests

from tests.browser import WAIT_MS, browsing, chromium, log_in, site, wait_until  # noqa: F401 (fixtures)
from tests.client import Player, wait_applied
from tests.streams import live  # noqa: F401 (fixture)
from tests.test_admin import flagged_submission, make_admin

pytestmark = pytest.mark.slow  # drives a browser


def enter_the_room(page, site, admin: Player) -> None:
    page.goto(site.base + "/")
    log_in(page, admin.username, admin.password)
    page.wait_for_selector("#admin-link:not([hidden])", timeout=WAIT_MS)
    page.click("#admin-link")
    page.wait_for_selector('body[data-room="open"]', timeout=WAIT_MS)


def test_an_admin_reverts_a_flag_from_the_page(live, site, browsing, db):
    admin, cheat = make_admin(site.base, db), Player(site.base)
    cheat.earn(5)
    flagged_submission(cheat, delta=9)  # a coin pickup faster than humanly possible
    page = browsing.page()
    enter_the_room(page, site, admin)
    flag = page.wait_for_selector(f'#flag-table tr[data-user-id="{cheat.id}"][data-state="open"]', timeout=WAIT_MS)
    text = flag.text_content()
    assert cheat.username in text and "Coin pickup" in text and "+9" in text and "Too fast" in text
    assert "all-time" in text
    browsing.check(page, "flag-queue")
    flag.query_selector("button:text('Revert')").click()
    page.wait_for_selector(f'#flag-table tr[data-user-id="{cheat.id}"][data-state="reverted"]', timeout=WAIT_MS)
    assert page.text_content("#message") == f"Reverted: -9 points for {cheat.username}, whose score is now 5."
    board = requests.get(f"{site.base}/api/scoreboard").json()["entries"]
    assert [(e["username"], e["score"]) for e in board] == [(cheat.username, 5)]
    browsing.check(page, "reverted")


def test_an_admin_bans_and_unbans_a_player_from_the_page(live, site, browsing, db):
    admin, player = make_admin(site.base, db), Player(site.base)
    page = browsing.page()
    enter_the_room(page, site, admin)
    page.select_option("#player-which", "")
    page.fill("#player-name", player.username[-6:].upper())  # any part of the name, any case
    page.press("#player-name", "Enter")
    found = f'#player-table tr[data-user-id="{player.id}"]'
    page.wait_for_selector(f"{found} button:text('Ban')", timeout=WAIT_MS).click()
    page.wait_for_selector(f"{found} .state[data-state='banned']", timeout=WAIT_MS)
    assert page.text_content("#message").startswith(f"{player.username} is banned")
    assert player.http.post(f"{site.base}/api/actions", json={"action_type": "tap"}).status_code == 403
    browsing.check(page, "banned")
    page.click(f"{found} button:text('Unban')")
    page.wait_for_selector(f"{found} .state[data-state='playing']", timeout=WAIT_MS)
    assert player.http.post(f"{site.base}/api/actions", json={"action_type": "tap"}).status_code == 201


def test_failed_apply_jobs_name_their_players_and_open_in_the_dashboard(live, site, browsing, db):
    admin, unlucky = make_admin(site.base, db), Player(site.base)
    with db.cursor() as cur:  # one more point would overflow the score: the worker cannot apply it
        cur.execute("UPDATE users SET current_score = %s WHERE id = %s", (2**63 - 1, unlucky.id))
    job = unlucky.submit(unlucky.start(), 3).json()["job_id"]
    assert wait_applied(unlucky, job, timeout=60)["state"] == "failed"
    page = browsing.page()
    enter_the_room(page, site, admin)
    held = page.wait_for_selector(f"#failed-table li:text('{unlucky.username}')", timeout=WAIT_MS)
    assert held.text_content().startswith(f"{unlucky.username} (#{unlucky.id}): Tap +3, accepted ")
    assert "(failed)" in held.text_content()
    error = page.text_content(f'#failed-table tr:has(li:text("{unlucky.username}")) .error-text')
    assert "out of range" in error and "[SQL" not in error and "Background" not in error, error
    browsing.check(page, "failed-jobs")
    page.wait_for_selector("#dashboard-link:not([hidden])", timeout=WAIT_MS)
    link = page.get_attribute("#failed-table a", "href")
    dashboard = browsing.context.new_page()  # the link opens a tab; its session is the cookie the room set
    response = dashboard.goto(site.base + link)
    assert response.status == 200 and "RQ dashboard" in dashboard.content()
    dashboard.close()


def test_the_admin_room_is_closed_to_players(live, site, browsing):
    player = Player(site.base)
    page = browsing.page()
    page.goto(site.base + "/")
    log_in(page, player.username, player.password)
    assert page.is_hidden("#admin-link")
    page.goto(site.base + "/admin/")
    page.wait_for_selector("#gate:not([hidden])", timeout=WAIT_MS)
    assert page.text_content("#gate-text") == "This is for admins only."
    assert page.is_hidden("#flags") and page.is_hidden("#dashboard-link")
    browsing.check(page, "closed")
    wait_until(page, "() => document.body.dataset.room === 'closed'")
