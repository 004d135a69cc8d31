"""The pages in a real headless Chromium (Debian's ``chromium``, driven by Playwright), at a
laptop and a phone size: fixtures, an axe-core check, and screenshots kept for a person.

The pages are served by a web process configured (``STREAM_URL``) with a stream process of
its own on another port (another origin, as in production); both can be stopped and
started again. Chromium missing is a failure, not a skip: ``.ci/run`` installs it.
axe-core (``tests/vendor/axe-core``, from the npm registry, MPL-2.0) is added to every page
before the page's own scripts, through the DevTools protocol, so the page's
Content-Security-Policy stays as served.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests import processes
from tests.conftest import LOG_DIR
from tests.streams import stream_environment

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
SCREENSHOTS = LOG_DIR / "screenshots"
WAIT_MS = 20_000
SIZES = {
    "laptop": {"viewport": {"width": 1366, "height": 860}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
              "device_scale_factor": 2},
}


class Site:
    """A web process whose pages open the stream of a stream process on another port."""

    def __init__(self, base_env: dict, **stream_settings):
        self.port = processes.free_port()
        self.web_port = processes.free_port()
        self.stream_url = f"http://127.0.0.1:{self.port}/api/scoreboard/stream"
        self.stream_env = stream_environment(base_env, STREAM_RETRY_MS=500, STREAM_HEARTBEAT=2, **stream_settings)
        self.web_env = dict(base_env, STREAM_URL=self.stream_url)
        self.stream = self.web = None
        self.base = f"http://127.0.0.1:{self.web_port}"
        self.start()

    def start(self) -> None:
        if self.stream is None:
            self.stream, _ = processes.start_stream(self.stream_env, LOG_DIR, port=self.port)
        if self.web is None:
            self.web, _ = processes.start_web(self.web_env, LOG_DIR, workers=1, port=self.web_port)

    def stop(self) -> None:
        for proc in (self.stream, self.web):
            if proc is not None:
                proc.stop()
        self.stream = self.web = None

    def restart_stream(self) -> None:
        self.stream.stop()
        self.stream = None
        self.start()


@pytest.fixture(scope="module")
def site(stack, base_env):
    """The site of a test module (its state is reset by each test's ``live`` fixture)."""
    s = Site(base_env)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def chromium():
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Browsing:
    """Pages of one browser context at one size; uncaught errors are collected."""

    def __init__(self, chromium, size: str, name: str, **context_options):
        self.size = size
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        self.context = chromium.new_context(**SIZES[size], **context_options)
        self.context.add_init_script(path=str(AXE))
        self.errors: list[str] = []

    def page(self) -> Page:
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def check(self, page: Page, state: str) -> None:
        """Keep a screenshot of this state, and assert axe-core finds no violation in it."""
        page.evaluate("""() => Promise.all(document.getAnimations()  // rows sliding or fading in settle first
            .filter((a) => a.effect && a.effect.getComputedTiming().iterations !== Infinity)
            .map((a) => a.finished.catch(() => null)))""")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{self.name}-{self.size}-{state}.png"), full_page=True)
        violations = page.evaluate("""async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map((v) => ({id: v.id, help: v.help,
                nodes: v.nodes.map((n) => n.target.join(" ") + ": " + n.failureSummary)}));
        }""")
        assert not violations, f"axe-core, state {state!r} at {self.size}: {violations}"

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"uncaught errors in the page: {self.errors}"


@pytest.fixture(params=list(SIZES))
def browsing(request, chromium):
    """A fresh browser context at a laptop, then at a phone size."""
    b = Browsing(chromium, request.param, request.node.originalname)
    yield b
    b.close()


def row(username: str, score: int | None = None) -> str:
    """The selector of a player's row on the board (with that score)."""
    selector = f'#scoreboard tbody tr[data-username="{username}"]'
    return selector + (f'[data-score="{score}"]' if score is not None else "")


def wait_until(page: Page, function: str, arg=None, timeout_ms: int = WAIT_MS):
    """Wait until the JavaScript ``function`` (of ``arg``) returns something true; return it.

    (Playwright's ``wait_for_function`` compiles its predicate with ``eval``, which the
    pages' Content-Security-Policy refuses; ``evaluate`` is not affected.)
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        value = page.evaluate(function, arg)
        if value:
            return value
        assert time.monotonic() < deadline, f"still false after {timeout_ms} ms: {function} ({arg!r})"
        time.sleep(0.03)


def log_in(page: Page, username: str, password: str) -> None:
    """Log in through the form, pressing Enter as a person would."""
    page.fill("#username", username)
    page.fill("#password", password)
    page.press("#password", "Enter")
    page.wait_for_selector("#signed-in:not([hidden])", timeout=WAIT_MS)
    wait_until(page, "() => document.getElementById('me-name').textContent.length > 0")
