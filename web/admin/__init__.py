"""The admin API: review flagged submissions, find, ban and unban users, see failed apply
jobs, open a dashboard session.

Every call needs the access token of an admin: anonymous callers get 401 (the contract's
token codes), everyone else 403 ``forbidden``.
"""

from __future__ import annotations

from flask import g
from flask_jwt_extended import create_refresh_token, decode_token, get_jwt

from scoreboard import accounts, flags
from scoreboard.moderation import Moderator
from web import schemas
from web.admin.auth import admin_required, set_session_cookies
from web.admin.failed_jobs import failed_apply_jobs
from web.extensions import Blueprint
from web.openapi import links, operation
from web.responses import json_response
from web.services import services

blp = Blueprint("admin", __name__, url_prefix="/api/admin",
                description="Admins: flags, users and bans, failed apply jobs, dashboard session")

# Ids are bigint: anything larger is no id of ours (404, not a database error).
_ID = "int(max=9223372036854775807)"


def moderator() -> Moderator:
    s = services()
    return Moderator(s.engine, s.redis, s.scripts, s.keys, s.settings.batching.result_ttl, s.settings.board_cache_ttl)


@blp.route("/flags", methods=["GET"])
@admin_required
@blp.arguments(schemas.FlagQuery(), location="query")
@blp.response(200, schemas.FlagList)
@blp.errors(401, 403, 422)
@links(200, resolve={"operationRef": operation("/api/admin/flags/{flag_id}/resolve", "post"),
                     "parameters": {"flag_id": "$response.body#/flags/0/id"}, "description": "decide the newest flag"})
def list_flags(query):
    """Flagged submissions, newest first; filter by state, rule, user; page with ``before``."""
    page = flags.list_flags(services().reads, state=query.get("state"), rule=query.get("rule"),
                            user_id=query.get("user_id"), before=query.get("before"), limit=query["limit"])
    return json_response({"flags": page.flags, "next_before": page.next_before})


@blp.route(f"/flags/<{_ID}:flag_id>/resolve", methods=["POST"])
@admin_required
@blp.arguments(schemas.ResolveRequest())
@blp.response(200, schemas.Resolved)
@blp.errors(401, 403, 404, 422)
@blp.alt_response(409, schema=schemas.ErrorSchema, description="flag_resolved: the flag was already decided")
def resolve_flag(body, flag_id):
    """Approve a flagged submission, or revert it: its points are taken back in one
    transaction (a history row with reason ``revert``) and the board is republished."""
    decision = moderator().resolve(flag_id, body["decision"], g.admin_id)
    return json_response({"flag_id": flag_id, "state": decision.state, "user_id": decision.user_id, "score": decision.score})


@blp.route("/users", methods=["GET"])
@admin_required
@blp.arguments(schemas.UserQuery(), location="query")
@blp.response(200, schemas.UserList)
@blp.errors(401, 403, 422)
def list_users(query):
    """Users newest first; filter by a part of the name and by ban; page with ``before``."""
    page = accounts.list_users(services().reads, search=query.get("search"), banned=query.get("banned"),
                               before=query.get("before"), limit=query["limit"])
    return json_response({"users": page.users, "next_before": page.next_before})


@blp.route("/failed-jobs", methods=["GET"])
@admin_required
@blp.arguments(schemas.FailedJobQuery(), location="query")
@blp.response(200, schemas.FailedJobList)
@blp.errors(401, 403, 422)
def list_failed_jobs(query):
    """Failed apply jobs, newest first, each with the submissions of its batch and their
    players; requeue them in the RQ dashboard (``dashboard_url``)."""
    s = services()
    jobs, total = failed_apply_jobs(s.redis, s.submissions, s.reads, s.settings.batching.queue, query["limit"])
    return json_response({"jobs": jobs, "total": total})


@blp.route(f"/users/<{_ID}:user_id>/ban", methods=["POST"])
@admin_required
@blp.response(200, schemas.Moderated)
@blp.errors(401, 403, 404)
@blp.alt_response(409, schema=schemas.ErrorSchema, description="cannot_ban_self")
@links(200, unban={"operationRef": operation("/api/admin/users/{user_id}/unban", "post"),
                   "parameters": {"user_id": "$response.body#/user_id"}, "description": "lift the ban"})
def ban_user(user_id):
    """Ban a user: off the board at once, their action tokens, submissions, new streams and
    refreshes refused with 403 ``user_banned``, their open streams ended (``event:
    logout``) within 2 s. Idempotent."""
    decision = moderator().ban(user_id, g.admin_id)
    return json_response({"user_id": user_id, "username": decision.username, "banned": True, "score": decision.score})


@blp.route(f"/users/<{_ID}:user_id>/unban", methods=["POST"])
@admin_required
@blp.response(200, schemas.Moderated)
@blp.errors(401, 403, 404)
@links(200, ban={"operationRef": operation("/api/admin/users/{user_id}/ban", "post"),
                 "parameters": {"user_id": "$response.body#/user_id"}, "description": "ban again"})
def unban_user(user_id):
    """Lift a ban: the user is back on the board with their score. Idempotent."""
    decision = moderator().unban(user_id, g.admin_id)
    return json_response({"user_id": user_id, "username": decision.username, "banned": False, "score": decision.score})


@blp.route("/session", methods=["POST"])
@admin_required
@blp.response(200, schemas.AdminSession)
@blp.errors(401, 403)
def open_dashboard_session():
    """Open the RQ dashboard in a browser: sets an HttpOnly session cookie (path ``/admin/``)
    holding a new refresh token of this login session, and the ``_csrf_token`` cookie. The
    dashboard session lasts as long as the login session: logout (or a ban, or the role
    revoked) ends it."""
    s = services()
    claims = get_jwt()
    token = create_refresh_token(identity=claims["sub"],
                                 additional_claims={"sid": claims.get("sid", ""), "name": claims.get("name", "")})
    expires_in = s.settings.sessions.refresh_expires
    response = json_response({"dashboard_url": "/admin/rq/", "expires_in": expires_in})
    set_session_cookies(response, token, decode_token(token), expires_in, s.settings.http.admin_cookie_secure)
    return response
