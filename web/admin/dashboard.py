"""rq-dashboard at ``/admin/rq/``, inside the API app, for admins only (see ``web.admin.auth``).

Its pages and JSON come from rq-dashboard 0.9.0's blueprint; this module gives it the app's
own Redis client (so it follows Sentinel and speaks TLS as every process does, where its
own URL handling knows neither Sentinel with TLS nor our timeouts), puts the admin check in
front of it, answers its failure cases (unknown job, bad page numbers, compacting an empty
queue) with the contract's body instead of a 500, relaxes the HTML pages' CSP just enough
for its JavaScript (underscore templates need ``'unsafe-eval'``; its markup uses style
attributes), and loads its templates with every value escaped.

Its pages draw each job (description, metadata, result, exception, names) in the browser
with underscore templates, and 0.9.0 prints them with ``<%= %>``, which inserts raw HTML:
a job whose metadata held ``<meta http-equiv=refresh ...>`` sent an admin's browser away.
Here its templates are served by a loader of the project's that makes every ``<%= x %>``
an escaping ``<%- x %>`` (and the two places that escaped by hand print their value
escaped once), so nothing a job holds reaches the page as markup.
"""

from __future__ import annotations

import os
import re
from functools import wraps

import redis
import rq_dashboard
from flask import Blueprint, Flask, abort, g, jsonify, request, send_from_directory
from jinja2 import BaseLoader, FileSystemLoader, TemplateNotFound
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq_dashboard.web import push_rq_connection

from scoreboard.settings import RedisSettings

from web.admin.auth import SAFE_METHODS, dashboard_admin
from web.errors import error_response

PREFIX = "/admin/rq"
_REGISTRIES = {"queued", "failed", "deferred", "started", "finished", "scheduled", "canceled"}
# rq-dashboard's "requeue all" also answers GET: it needs the CSRF token all the same.
_CHANGES_ON_GET = {"rq_dashboard.requeue_all"}
_NUMBER = re.compile(r"^[1-9][0-9]{0,5}$")
# rq-dashboard's own escaping, written out by hand in two of its templates
_ESCAPED_BY_HAND = re.compile(r"""\$\('<div/>'\)\.text\((.*?)\)\.html\(\)""")


def escape_interpolations(source: str) -> str:
    """An underscore template in which every interpolation escapes its value."""
    return _ESCAPED_BY_HAND.sub(r"\1", source).replace("<%=", "<%-")


class _EscapingLoader(BaseLoader):
    """rq-dashboard's templates, through ``escape_interpolations``."""

    def __init__(self, folder: str):
        self.files = FileSystemLoader(folder)

    def get_source(self, environment, template):
        if not template.startswith("rq_dashboard/"):
            raise TemplateNotFound(template)
        source, filename, uptodate = self.files.get_source(environment, template)
        return escape_interpolations(source), filename, uptodate


class _EscapedTemplates(Blueprint):
    """Registered before rq-dashboard's blueprint, so Flask finds its templates here first."""

    @property
    def jinja_loader(self):
        return _EscapingLoader(os.path.join(rq_dashboard.blueprint.root_path, rq_dashboard.blueprint.template_folder))


def _compact_empty_too(view):
    """rq's ``Queue.compact`` renames the queue's list, which Redis refuses when the queue is
    empty (there is no list): nothing to compact, which is what the dashboard is told."""

    @wraps(view)
    def compact(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except redis.ResponseError as exc:
            if "no such key" not in str(exc).lower():
                raise
            return jsonify(status="OK"), {"Cache-Control": "no-store"}

    return compact


def _check_view_args(args: dict) -> None:
    """404 for what rq-dashboard would answer with a 500 (it trusts its URLs)."""
    if args.get("instance_number", 0) != 0:
        abort(404)  # one Redis only
    if "registry_name" in args and args["registry_name"] not in _REGISTRIES:
        abort(404)
    if "order" in args and args["order"] not in ("asc", "dsc"):
        abort(404)
    for name in ("per_page", "page"):
        if name in args and not _NUMBER.match(str(args[name])):
            abort(404)
    if "per_page" in args and int(args["per_page"]) > 100:
        abort(404)


def _guard():
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        dashboard_admin(request.method not in SAFE_METHODS or request.endpoint in _CHANGES_ON_GET)
        _check_view_args(request.view_args or {})
        g.csp_relax = {"script-src": ("'unsafe-eval'",), "style-src": ("'unsafe-inline'",)}


def _shown_url(conf: RedisSettings) -> str:
    """What the dashboard shows as its Redis (it hides any password)."""
    if not conf.sentinels:
        return conf.url
    hosts = ",".join(f"{host}:{port}" for host, port in conf.sentinels)
    return f"redis+sentinel://{hosts}/{conf.sentinel_master}"


def install(app: Flask, client: redis.Redis, conf: RedisSettings) -> None:
    """Mount the dashboard on ``app`` at ``/admin/rq/``, reading RQ's keys through ``client``."""
    app.config["RQ_DASHBOARD_REDIS_URL"] = (_shown_url(conf),)  # one instance, shown in its pages
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 2500)
    app.redis_conn = client
    app.before_request(_guard)
    app.register_blueprint(_EscapedTemplates("rq_dashboard_escaped", __name__))
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)
    # its own hook would open a client of its own from the URL on every page of instance 0:
    # app.redis_conn stays the app's client
    app.before_request_funcs[rq_dashboard.blueprint.name].remove(push_rq_connection)
    app.view_functions["rq_dashboard.compact_queue"] = _compact_empty_too(app.view_functions["rq_dashboard.compact_queue"])
    if "static" not in app.view_functions:
        # its base page links url_for('static', filename='favicon.ico'); this app has no static folder
        folder = rq_dashboard.blueprint.static_folder
        app.add_url_rule(f"{PREFIX}/app-static/<path:filename>", "static",
                         lambda filename: send_from_directory(folder, filename))
    app.register_error_handler(NoSuchJobError, lambda exc: error_response(404, "not_found", "There is no such job."))
    app.register_error_handler(
        InvalidJobOperation,
        lambda exc: error_response(409, "invalid_job_operation", f"This cannot be done to this job: {exc}"),
    )
