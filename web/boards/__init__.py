"""Boards: the list, a period's pages, around me, one user, the closed periods, and the
admins' seasons (contract, "Boards")."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from scoreboard import accounts, navigation
from scoreboard.errors import Refused
from scoreboard.periods import Calendar, utc_ms
from web import schemas
from web.admin.auth import admin_required
from web.extensions import Blueprint
from web.identity import current_user_id, token_required
from web.responses import json_response
from web.services import services

blp = Blueprint("boards", __name__, url_prefix="/api", description="Boards: periods, final standings, navigation")

_ID = "int(max=9223372036854775807)"
# A board id is at most 32 characters: a longer path is no board (and the OpenAPI document says so).
_BOARD = "string(maxlength=64):board"


def _calendar() -> Calendar:
    s = services()
    with s.reads.connect() as conn:
        return Calendar.load(conn, s.settings.boards)


def _reader() -> navigation.Reader:
    s = services()
    return navigation.Reader(s.reads.engine(), s.redis, s.scripts, s.keys, s.cursors)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _version() -> int:
    return int(services().redis.get(services().keys.board_version) or 0)


@blp.route("/boards", methods=["GET"])
@blp.response(200, schemas.BoardList)
def boards():
    """Every board with its open period (null between seasons) and when it next resets."""
    return json_response({"boards": navigation.listing(_calendar(), _now())})


@blp.route(f"/boards/<{_BOARD}>", methods=["GET"])
@blp.arguments(schemas.BoardPageQuery(), location="query")
@blp.response(200, schemas.BoardPage)
@blp.errors(400, 404, 422, 503)
def board_page(query, board):
    """A page of a board period (the open one, else the last closed): competition ranks,
    equal scores by who reached them first in the period; ``next_cursor`` continues it."""
    view = navigation.resolve(services().reads.engine(), _calendar(), board, query.get("period"), _now())
    if view is None:  # a season board that never had a season
        body = {"entries": [], "total": 0, "next_cursor": None}
    else:
        body = _reader().page(view, query["limit"], query.get("cursor"))
    return json_response({"board": board, "period": view.as_dict() if view else None, **body,
                          "version": _version(), "generated_at": time.time_ns() // 1_000_000})


@blp.route(f"/boards/<{_BOARD}>/around/me", methods=["GET"])
@token_required()
@blp.arguments(schemas.AroundQuery(), location="query")
@blp.response(200, schemas.AroundMe)
@blp.errors(401, 404, 422, 503)
def around_me(query, board):
    """The caller's entry with the entries just above and below it, ``limit`` in all."""
    view = navigation.resolve(services().reads.engine(), _calendar(), board, query.get("period"), _now())
    if view is None:
        body = {"entries": [], "total": 0, "me": None}
    else:
        body = _reader().around(view, current_user_id(), query["limit"])
    return json_response({"board": board, "period": view.as_dict() if view else None, **body})


@blp.route(f"/boards/<{_BOARD}>/users/<{_ID}:user_id>", methods=["GET"])
@blp.arguments(schemas.PeriodQuery(), location="query")
@blp.response(200, schemas.UserOnBoard)
@blp.errors(404, 422, 503)
def user_on_board(query, board, user_id):
    """One user's rank, score and percentile on a board period (rank null when not on it)."""
    s = services()
    view = navigation.resolve(s.reads.engine(), _calendar(), board, query.get("period"), _now())
    user = accounts.get_user(s.reads.engine(), user_id)
    if user is None:
        raise Refused("not_found", "There is no user with this id.")
    place = _reader().user(view, user_id) if view else {"rank": None, "score": None, "total": 0, "percentile": None}
    if user.banned:
        place = {**place, "rank": None, "score": None, "percentile": None}
    return json_response({"user_id": user.id, "username": user.username, **place})


@blp.route(f"/boards/<{_BOARD}>/periods", methods=["GET"])
@blp.arguments(schemas.PeriodsQuery(), location="query")
@blp.response(200, schemas.PeriodList)
@blp.errors(404, 422)
def periods(query, board):
    """The board's closed periods, newest first, each with its winner."""
    cursor = int(query["cursor"]) if query.get("cursor") else None
    return json_response(navigation.closed_periods(services().reads.engine(), _calendar(), board, query["limit"],
                                                   cursor))


@blp.route(f"/admin/boards/<{_BOARD}>/periods", methods=["POST"])
@admin_required
@blp.arguments(schemas.SeasonRequest())
@blp.response(201, schemas.PeriodSpan)
@blp.errors(401, 403, 404, 422)
@blp.alt_response(409, schema=schemas.ErrorSchema, description="period_overlap")
def add_season(body, board):
    """Open a season on a season board (admins): no overlap with another season, no end in the past."""
    s = services()
    season = navigation.add_season(s.engine, _calendar(), board, body["key"], utc_ms(body["starts_at"]),
                                   utc_ms(body["ends_at"]), _now(), s.redis, s.keys)
    return json_response({"key": season.key, "starts_at": season.starts_at_ms, "ends_at": season.ends_at_ms}, 201)
