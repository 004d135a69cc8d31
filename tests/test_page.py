"""The web page in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

The page is served by a web process configured (``STREAM_URL``) with a stream process
of its own on another port, as in production; the test restarts that stream process.
Chromium missing is a failure, not a skip: ``.ci/run`` installs it.
"""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import sync_playwright

from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.streams import live, stream_environment  # noqa: F401 (fixture)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
WAIT_MS = 20_000


@pytest.fixture
def site(live, base_env):
    """A web process whose page points at a stream process on its own port."""
    port = processes.free_port()
    stream_url = f"http://127.0.0.1:{port}/api/scoreboard/stream"
    stream_env = stream_environment(base_env, STREAM_RETRY_MS=500, STREAM_HEARTBEAT=2)
    started = {}
    started["stream"], _ = processes.start_stream(stream_env, LOG_DIR, port=port)
    try:
        started["web"], web_base = processes.start_web(dict(base_env, STREAM_URL=stream_url), LOG_DIR, workers=1)

        def restart_stream():
            started["stream"].stop()
            started["stream"], _ = processes.start_stream(stream_env, LOG_DIR, port=port)

        yield web_base, restart_stream
    finally:
        for proc in started.values():
            proc.stop()


@pytest.fixture
def browser():
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def row(username: str, score: int) -> str:
    return f'#scoreboard tbody tr[data-username="{username}"][data-score="{score}"]'


def test_page_shows_the_live_board_and_survives_a_stream_restart(site, browser, tmp_path):
    web_base, restart_stream = site
    me, other = Player(web_base), Player(web_base)
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(web_base + "/")
    assert page.get_attribute("#connection", "data-state") == "signed-out"

    page.fill("#username", me.username)
    page.fill("#password", me.password)
    page.click("#login")
    page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT_MS)

    other.earn(42)  # another client's submission appears without a reload
    page.wait_for_selector(row(other.username, 42), timeout=WAIT_MS)
    first = page.locator("#scoreboard tbody tr").first
    assert first.get_attribute("data-rank") == "1" and first.get_attribute("data-username") == other.username

    page.select_option("#action-type", "tap")  # the page's own submission, signed with Web Crypto
    page.click("#start")
    page.wait_for_selector("#submit:not([disabled])", timeout=WAIT_MS)
    page.fill("#delta", "17")
    page.click("#submit")
    page.wait_for_selector(row(me.username, 17), timeout=WAIT_MS)
    page.wait_for_function("document.getElementById('my-score').textContent === '17'", timeout=WAIT_MS)
    assert page.text_content("#my-rank") == "2"

    restart_stream()
    page.wait_for_selector('#connection[data-state="live"]', timeout=WAIT_MS)
    other.earn(8)
    page.wait_for_selector(row(other.username, 50), timeout=WAIT_MS)
    page.screenshot(path=str(tmp_path / "page.png"))

    page.click("#logout")
    page.wait_for_selector('#connection[data-state="signed-out"]', timeout=WAIT_MS)
    assert not errors, errors
