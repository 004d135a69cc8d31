"""Action tokens: one action, one token, one use."""

from __future__ import annotations


from scoreboard import action_tokens, metrics
from scoreboard.errors import MESSAGES, Refused
from web import schemas
from web.banned import refuse_banned
from web.extensions import Blueprint, limiter
from web.identity import current_user_id, token_required
from web.responses import json_response
from web.services import services

blp = Blueprint("actions", __name__, url_prefix="/api", description="Action types and action tokens")


@blp.route("/action-types", methods=["GET"])
@blp.response(200, schemas.ActionTypeList)
def list_action_types():
    """The configured action types and their score ranges (public)."""
    types = services().settings.actions.types
    return json_response({"action_types": [t.as_dict() for t in types]})


@blp.route("/actions", methods=["POST"])
@token_required()
@limiter.limit(lambda: services().settings.limits.actions)
@refuse_banned
@blp.arguments(schemas.ActionRequest())
@blp.response(201, schemas.ActionTokenSchema)
@blp.alt_response(401, schema=schemas.ErrorSchema)
@blp.alt_response(403, schema=schemas.ErrorSchema, description="user_banned")
@blp.alt_response(422, schema=schemas.ErrorSchema, description="unknown_action_type or invalid_request")
@blp.alt_response(503, schema=schemas.ErrorSchema,
                  description="unavailable, with `Retry-After`: Redis, or (`REDIS_MIN_REPLICA_ACKS`) no replica "
                              "confirmed the token in time")
def start_action(body):
    """Start an action: a one-time token and the secret to sign its result with."""
    s = services()
    action_type = s.settings.actions.by_name.get(body["action_type"])
    if action_type is None:
        raise Refused("unknown_action_type", f"There is no action type {body['action_type']!r}.")
    token = action_tokens.issue(s.redis, s.keys, s.settings, current_user_id(), action_type)
    if not s.replica_acks.confirm(s.redis, s.keys):  # a token lost with the primary would refuse the result
        metrics.REPLICA_ACK_TIMEOUTS.labels("action_token").inc()
        raise Refused("unavailable", MESSAGES["token_not_replicated"])
    payload = {
        "action_token": token.token,
        "secret": token.secret,
        "action_type": token.action_type,
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
    }
    return json_response(payload, 201)
