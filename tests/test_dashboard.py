"""rq-dashboard at /admin/rq/: admins only, a browser session by cookie with CSRF, and a
real failed job requeued and deleted through the dashboard's own HTTP endpoints."""

import os
import re
import secrets
import time

import pytest
import requests
from playwright.sync_api import sync_playwright
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from tests import processes
from tests.client import Player
from tests.conftest import LOG_DIR
from tests.test_admin import make_admin

@pytest.fixture
def queue(settings) -> str:
    """The maintenance queue of this test session (its workers listen to it)."""
    return settings.batching.maintenance_queue


def failed_job(r, queue: str, marker: str) -> str:
    """Enqueue a job that fails until ``marker`` exists; wait until a worker failed it."""
    job = Queue(queue, connection=r).enqueue("tests.jobs.fail_until", marker, failure_ttl=600, result_ttl=600)
    registry = FailedJobRegistry(queue, connection=r)
    deadline = time.monotonic() + 30
    while job.id not in registry.get_job_ids():
        assert time.monotonic() < deadline, "the job did not fail"
        time.sleep(0.1)
    return job.id


def wait_status(r, job_id: str, status: str) -> None:
    deadline = time.monotonic() + 30
    while Job.fetch(job_id, connection=r).get_status() != status:
        assert time.monotonic() < deadline, Job.fetch(job_id, connection=r).get_status()
        time.sleep(0.1)


def browser(api, admin: Player) -> requests.Session:
    """A browser-like session: the cookies of POST /api/admin/session, no Authorization header."""
    resp = admin.http.post(f"{api}/api/admin/session")
    assert resp.status_code == 200 and resp.json()["dashboard_url"] == "/admin/rq/"
    cookies = {c.name: c for c in admin.http.cookies}
    session = cookies["sb_admin_session"]
    assert session.path == "/admin/" and session.has_nonstandard_attr("HttpOnly")
    assert session.get_nonstandard_attr("SameSite") == "Strict"
    assert not cookies["_csrf_token"].has_nonstandard_attr("HttpOnly") and cookies["_csrf_token"].path == "/admin/"
    b = requests.Session()
    b.cookies.update(admin.http.cookies)
    admin.http.cookies.clear()
    return b


def test_dashboard_needs_an_admin(api, db):
    player = Player(api)
    for url in ("/admin/rq/", "/admin/rq/0/data/queues.json", "/admin/rq/static/js/jquery-3.5.1.min.js"):
        resp = requests.get(f"{api}{url}")
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "missing_token", url
        resp = player.http.get(f"{api}{url}")
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden", url
    resp = requests.post(f"{api}/admin/rq/job/x/requeue")
    assert resp.status_code == 401
    # a forged or unsigned cookie is no session
    resp = requests.get(f"{api}/admin/rq/", cookies={"sb_admin_session": "x.y.z"})
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_token"


def test_dashboard_pages_for_an_admin(api, db, r, queue):
    admin = make_admin(api, db)
    job_id = failed_job(r, queue, f"never:{secrets.token_hex(4)}")
    page = admin.http.get(f"{api}/admin/rq/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "RQ dashboard" in page.text
    csp = page.headers["Content-Security-Policy"]
    assert re.search(r"script-src 'self' 'sha256-[A-Za-z0-9+/=]+' 'unsafe-eval'", csp), csp
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    for path in ("/admin/rq/0/view/jobs", "/admin/rq/0/view/workers", "/admin/rq/static/js/jquery-3.5.1.min.js",
                 "/admin/rq/0/data/workers.json"):
        assert admin.http.get(f"{api}{path}").status_code == 200, path
    queues = admin.http.get(f"{api}/admin/rq/0/data/queues.json").json()["queues"]
    assert [q["failed_job_registry_count"] for q in queues if q["name"] == queue][0] >= 1
    job = admin.http.get(f"{api}/admin/rq/0/view/job/{job_id}")
    assert job.status_code == 200 and job_id in job.text


def test_requeue_and_delete_a_failed_job_from_a_browser_session(api, db, r, queue):
    admin = make_admin(api, db)
    b = browser(api, admin)
    marker = f"test-marker:{secrets.token_hex(4)}"
    job_id = failed_job(r, queue, marker)

    listed = b.get(f"{api}/admin/rq/0/data/jobs/{queue}/failed/100/asc/1.json")
    assert listed.status_code == 200 and job_id in {j["id"] for j in listed.json()["jobs"]}
    assert b.get(f"{api}/admin/rq/0/data/job/{job_id}.json").json()["status"] == "failed"

    # the dashboard's JavaScript sends X-CSRFToken from the _csrf_token cookie; without it, refused
    url = f"{api}/admin/rq/job/{job_id}/requeue"
    for headers in ({}, {"X-CSRFToken": "0" * 64}):
        resp = b.post(url, headers=headers)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "csrf_failed"
    assert Job.fetch(job_id, connection=r).get_status() == "failed"

    csrf = {"X-CSRFToken": b.cookies["_csrf_token"]}
    r.set(marker, 1, ex=600)
    resp = b.post(url, headers=csrf)
    assert resp.status_code == 200 and resp.json() == {"status": "OK"}
    wait_status(r, job_id, "finished")

    # "requeue all" answers GET too: a cookie session needs the CSRF token there as well
    resp = b.get(f"{api}/admin/rq/requeue/{queue}")
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "csrf_failed"

    doomed = failed_job(r, queue, f"never:{secrets.token_hex(4)}")
    resp = b.post(f"{api}/admin/rq/job/{doomed}/delete", headers=csrf)
    assert resp.status_code == 200 and resp.json() == {"status": "OK"}
    assert not Job.exists(doomed, connection=r)
    assert doomed not in FailedJobRegistry(queue, connection=r).get_job_ids()


def test_bearer_requests_need_no_csrf_token(api, db, r, queue):
    admin = make_admin(api, db)
    job_id = failed_job(r, queue, f"never:{secrets.token_hex(4)}")
    resp = admin.http.post(f"{api}/admin/rq/job/{job_id}/delete")
    assert resp.status_code == 200 and not Job.exists(job_id, connection=r)


def test_the_dashboard_session_ends_with_the_login_session(api, db):
    admin = make_admin(api, db)
    b = browser(api, admin)
    assert b.get(f"{api}/admin/rq/0/data/queues.json").status_code == 200
    assert admin.http.post(f"{api}/api/auth/logout").status_code == 200
    resp = b.get(f"{api}/admin/rq/0/data/queues.json")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "token_revoked"


@pytest.mark.slow  # starts a web process of its own, waits for a token to expire
def test_the_dashboard_session_outlives_the_access_token(stack, api, db, base_env):
    """The session cookie holds the login session's refresh token: an hour later (here two
    seconds) the dashboard still answers, though every access token of the login has expired."""
    web, base = processes.start_web({**base_env, "ACCESS_TOKEN_EXPIRES": "2"}, LOG_DIR, workers=1)
    try:
        admin = make_admin(base, db)
        b = browser(base, admin)
        time.sleep(3)
        assert admin.http.get(f"{base}/api/admin/flags").json()["error"]["code"] == "token_expired"
        assert b.get(f"{base}/admin/rq/0/data/queues.json").status_code == 200
        assert b.post(f"{base}/admin/rq/job/no-such-job/requeue",
                      headers={"X-CSRFToken": b.cookies["_csrf_token"]}).status_code == 404  # past the CSRF check
    finally:
        web.stop()


def test_a_revoked_admin_role_closes_the_dashboard(api, db):
    admin = make_admin(api, db)
    b = browser(api, admin)
    with db.cursor() as cur:
        cur.execute("UPDATE users SET is_admin = false WHERE id = %s", (admin.id,))
    assert b.get(f"{api}/admin/rq/").status_code == 403


@pytest.mark.parametrize("method,path,status", [
    ("get", "/admin/rq/1/view/queues", 404),
    ("get", "/admin/rq/0/data/jobs/maintenance/bogus/8/asc/1.json", 404),
    ("get", "/admin/rq/0/data/jobs/maintenance/failed/0/asc/1.json", 404),
    ("get", "/admin/rq/0/data/jobs/maintenance/failed/x/asc/1.json", 404),
    ("get", "/admin/rq/0/data/jobs/maintenance/failed/8/sideways/1.json", 404),
    ("get", "/admin/rq/0/data/job/no-such-job.json", 404),
    ("get", "/admin/rq/0/view/job/no-such-job", 404),
    ("post", "/admin/rq/job/no-such-job/requeue", 404),
    ("get", "/admin/rq/nothing-here", 404),
    ("delete", "/admin/rq/job/x/delete", 405),
])
def test_dashboard_errors_are_json_not_500(method, path, status, api, db):
    admin = make_admin(api, db)
    resp = admin.http.request(method, f"{api}{path}")
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"]


def test_compacting_an_empty_queue_is_no_error(api, db, r):
    admin = make_admin(api, db)
    empty = f"empty-{secrets.token_hex(4)}"
    resp = admin.http.post(f"{api}/admin/rq/queue/{empty}/compact")
    assert resp.status_code == 200 and resp.json() == {"status": "OK"}
    queue = Queue(f"compact-{secrets.token_hex(4)}", connection=r)
    kept = queue.enqueue("tests.jobs.fail_until", "never")
    gone = queue.enqueue("tests.jobs.fail_until", "never")
    gone.delete(remove_from_queue=False)  # a dead id left in the queue, what compacting is for
    resp = admin.http.post(f"{api}/admin/rq/queue/{queue.name}/compact")
    assert resp.status_code == 200 and queue.get_job_ids() == [kept.id]
    queue.empty()


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PAYLOAD = '<meta http-equiv="refresh" content="3;url=/healthz?hijacked"><b id="injected">bold</b>'


@pytest.fixture
def chromium():
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.parametrize("view", ["job", "jobs"])
def test_what_a_job_holds_is_shown_as_text_never_as_markup(view, api, db, r, chromium):
    """A request id, a description, an argument a user could shape: on the job's page and in
    the list of a queue (one no worker takes from), shown escaped."""
    queue = Queue(f"shown-{secrets.token_hex(4)}", connection=r)
    job = queue.enqueue("tests.jobs.fail_until", PAYLOAD, description=PAYLOAD, meta={"request_id": PAYLOAD})
    cookies = browser(api, make_admin(api, db)).cookies
    context = chromium.new_context()
    context.add_cookies([{"name": c.name, "value": c.value, "url": f"{api}/admin/"} for c in cookies])
    page = context.new_page()
    url = f"{api}/admin/rq/0/view/job/{job.id}" if view == "job" else \
        f"{api}/admin/rq/0/view/jobs/{queue.name}/queued/100/asc/1"
    where = "#job-data" if view == "job" else f'tr[data-job-id="{job.id}"]'
    try:
        page.goto(url)
        page.wait_for_function("s => (document.querySelector(s) || {}).textContent?.includes('http-equiv')",
                               arg=where, timeout=20_000)
        assert PAYLOAD in page.locator(where).text_content()
        assert page.locator("#injected").count() == 0 and page.locator("body meta[http-equiv]").count() == 0
        assert page.url == url
    finally:
        context.close()
        queue.delete(delete_jobs=True)
