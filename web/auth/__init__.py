"""Accounts and sessions: register, login, refresh, logout, and the caller's profile."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
    get_jwt,
)

from scoreboard import accounts, navigation, ranking
from scoreboard.events import logout_message
from scoreboard.periods import Calendar
from scoreboard.errors import Refused
from web import schemas
from web.banned import refuse_banned
from web.extensions import Blueprint, limiter
from web.identity import current_user_id, token_required
from web.openapi import links, operation
from web.responses import json_response
from web.services import services

blp = Blueprint("auth", __name__, url_prefix="/api", description="Accounts and sessions")


def _limit(name: str):
    return lambda: getattr(services().settings.limits, name)


@blp.route("/auth/register", methods=["POST"])
@limiter.limit(_limit("register"))
@blp.arguments(schemas.Credentials())
@blp.response(201, schemas.UserCreated)
@blp.alt_response(409, schema=schemas.ErrorSchema, description="username_taken")
@links(201, login={"operationRef": operation("/api/auth/login", "post"), "description": "log in as the new user",
                   "requestBody": {"username": "$request.body#/username", "password": "$request.body#/password"}},
       ban={"operationRef": operation("/api/admin/users/{user_id}/ban", "post"), "description": "(admins)",
            "parameters": {"user_id": "$response.body#/id"}})
def register(body):
    """Create an account."""
    s = services()
    user = accounts.register(s.engine, s.hasher, body["username"], body["password"])
    return json_response({"id": user.id, "username": user.username}, 201)


def _tokens(user_id: int, username: str, session_id: str, refresh: bool, admin: bool = False) -> dict:
    """The token body of a login or refresh. ``adm`` only tells the page to offer the admin
    room; every admin call reads the role from PostgreSQL."""
    settings = services().settings
    claims = {"sid": session_id, "name": username}
    if admin:
        claims["adm"] = True
    body = {
        "access_token": create_access_token(identity=str(user_id), additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": settings.sessions.access_expires,
    }
    if refresh:
        body["refresh_token"] = create_refresh_token(identity=str(user_id), additional_claims=claims)
    return body


@blp.route("/auth/login", methods=["POST"])
@limiter.limit(_limit("login"))
@blp.arguments(schemas.LoginRequest())
@blp.response(200, schemas.TokenPair)
@blp.alt_response(401, schema=schemas.ErrorSchema, description="invalid_credentials")
def login(body):
    """Exchange a username and password for an access and a refresh token."""
    s = services()
    user = accounts.authenticate(s.engine, s.hasher, body["username"], body["password"])
    return json_response(_tokens(user.id, user.username, secrets.token_hex(16), refresh=True, admin=user.is_admin))


@blp.route("/auth/refresh", methods=["POST"])
@token_required(refresh=True)
@refuse_banned
@blp.response(200, schemas.AccessToken)
@blp.alt_response(401, schema=schemas.ErrorSchema)
@blp.alt_response(403, schema=schemas.ErrorSchema, description="user_banned")
def refresh():
    """A new access token for the refresh token sent as Bearer (403 ``user_banned`` for a banned user)."""
    claims = get_jwt()
    return json_response(_tokens(int(claims["sub"]), claims.get("name", ""), claims.get("sid", ""), refresh=False,
                                 admin=bool(claims.get("adm"))))


@blp.route("/auth/logout", methods=["POST"])
@token_required()
@blp.response(200, schemas.Revoked)
@blp.alt_response(401, schema=schemas.ErrorSchema)
def logout():
    """Revoke the session of this access token (its refresh token too); its streams end."""
    s = services()
    claims = get_jwt()
    k = s.keys
    ttl = s.settings.sessions.refresh_expires
    pipe = s.redis.pipeline(transaction=True)
    pipe.set(k.revoked(claims["jti"]), 1, ex=s.settings.sessions.access_expires)
    if claims.get("sid"):
        pipe.set(k.revoked_session(claims["sid"]), 1, ex=ttl)
    pipe.publish(k.events_channel, logout_message(sid=claims.get("sid"), jti=claims["jti"]))
    pipe.execute()
    return json_response({"revoked": True})


@blp.route("/users/me", methods=["GET"])
@token_required()
@blp.response(200, schemas.Me)
@blp.alt_response(401, schema=schemas.ErrorSchema)
def me():
    """The caller's account, score and competition rank."""
    s = services()
    user = accounts.get_user(s.engine, current_user_id())
    if user is None:
        raise Refused("not_found", "This account no longer exists.")
    rank = ranking.rank_of(s.reads, s.redis, s.keys, user.id, user.score) if user.has_score and not user.banned else None
    boards = {}
    if not user.banned:
        with s.reads.connect() as conn:
            calendar = Calendar.load(conn, s.settings.boards)
        boards = navigation.places_of(s.reads.engine(), s.redis, s.keys, calendar, user.id, datetime.now(timezone.utc))
    return json_response({"id": user.id, "username": user.username, "score": user.score, "rank": rank,
                          "boards": boards})
