"""The public score board."""

from __future__ import annotations

from flask import Response

from scoreboard import ranking
from web import schemas
from web.extensions import Blueprint
from web.services import services

blp = Blueprint("board", __name__, url_prefix="/api", description="Score board")


@blp.route("/scoreboard", methods=["GET"])
@blp.arguments(schemas.BoardQuery(), location="query")
@blp.response(200, schemas.Board)
@blp.alt_response(422, schema=schemas.ErrorSchema)
def scoreboard(query):
    """The top ``limit`` users (competition ranks; equal scores: who reached it first)."""
    s = services()
    body = ranking.read_board(s.reads, s.redis, s.scripts, s.keys, query["limit"],
                              s.settings.board_cache_ttl)
    return Response(body, mimetype="application/json")
