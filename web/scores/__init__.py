"""Score submission: every cheap check at once, then the accepted submission to Redis."""

from __future__ import annotations

import logging
import re

import redis
from flask import g, request

from scoreboard import action_tokens, jobspec, metrics
from scoreboard.errors import MESSAGES, Refused
from web import schemas
from web.banned import refuse_banned
from web.extensions import Blueprint, limiter
from web.identity import current_user_id, token_required
from web.openapi import links, operation
from web.responses import json_response
from web.services import services
from workers.enqueue import enqueue_apply

blp = Blueprint("scores", __name__, url_prefix="/api/score", description="Score submission")

log = logging.getLogger(__name__)

JOB_STATUS = {"operationRef": operation("/api/score/jobs/{job_id}", "get"),
              "parameters": {"job_id": "$response.body#/job_id"}, "description": "the submission's state"}
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+(?:\.\d+)?)", re.IGNORECASE)


def prefer_wait(header: str | None, maximum: float) -> float:
    """Seconds asked for by ``Prefer: wait=N`` (RFC 7240), capped at ``maximum``."""
    if not header:
        return 0.0
    match = _PREFER_WAIT.search(header)
    return min(float(match.group(1)), maximum) if match else 0.0


@blp.route("/update", methods=["POST"])
@token_required()
@limiter.limit(lambda: services().settings.limits.submit)
@refuse_banned
@blp.arguments(schemas.SubmissionRequest())
@blp.response(202, schemas.Accepted)
@blp.alt_response(200, schema=schemas.AppliedResult, description="applied within the `Prefer: wait=N` time")
@blp.alt_response(401, schema=schemas.ErrorSchema)
@blp.alt_response(403, schema=schemas.ErrorSchema,
                  description="token_unknown, token_used, bad_signature, token_expired, user_banned")
@blp.alt_response(422, schema=schemas.ErrorSchema, description="invalid_request or invalid_score")
@blp.alt_response(429, schema=schemas.ErrorSchema, description="rate_limited")
@blp.alt_response(
    503, schema=schemas.UnavailableSchema,
    description=(
        "unavailable, with `Retry-After`: Redis or too many waiting submissions. With a `job_id` (and "
        "`status_url`) in the error: the submission was accepted but no Redis replica confirmed it in time "
        "(only where the operator set `REDIS_MIN_REPLICA_ACKS`); it stays accepted and is applied unless the "
        "primary is lost before it is copied: look it up before submitting again."
    ),
)
@links(202, job=JOB_STATUS)
@links(200, job=JOB_STATUS)
def submit(body):
    """Submit the signed result of an action."""
    s = services()
    user_id = current_user_id()
    record = action_tokens.load(s.redis, s.keys, body["action_token"])
    action_tokens.check_submission(
        record,
        user_id,
        body["score_delta"],
        body["completed_at"],
        body["signature"],
        s.settings.actions.by_name,
        s.settings.actions.clock_skew,
    )
    batching = s.settings.batching
    request_id = getattr(g, "request_id", "")
    accepted = s.submissions.accept(record, body["score_delta"], body["completed_at"], batching.max_size,
                                    pending_cap=batching.pending_cap, request_id=request_id)
    sid = accepted.submission_id
    status_url = f"/api/score/jobs/{sid}"
    try:
        if accepted.new_batch:
            enqueue_apply(s.queue, accepted.batch_id, batching.job_timeout, s.keys.prefix, request_id=request_id)
        replicated = s.replica_acks.confirm(s.redis, s.keys)  # the submission and its job
    except (redis.ConnectionError, redis.TimeoutError):
        if not s.replica_acks.count:
            raise
        replicated = False  # the primary went away after accepting it
    log.info("submission accepted", extra={"submission_id": sid, "batch_id": accepted.batch_id,
                                           "rq_job_id": jobspec.apply_job_id(accepted.batch_id)})
    if not replicated:
        metrics.REPLICA_ACK_TIMEOUTS.labels("submission").inc()
        raise Refused("unavailable", MESSAGES["not_replicated"], job_id=sid, status_url=status_url)
    wait = prefer_wait(request.headers.get("Prefer"), batching.prefer_wait_max)
    if wait:
        result = s.submissions.wait_result(sid, wait)
        if result is not None and result.get("state") == "applied":
            return json_response(result, 200)
    return json_response({"job_id": sid, "status_url": status_url, "state": "queued"}, 202)


@blp.route("/jobs/<string:job_id>", methods=["GET"])
@token_required()
@blp.response(200, schemas.JobStatus)
@blp.alt_response(401, schema=schemas.ErrorSchema)
@blp.alt_response(404, schema=schemas.ErrorSchema, description="no such job of yours")
def job_status(job_id):
    """The state of one of your submissions."""
    s = services()
    body = s.submissions.status(current_user_id(), job_id) if len(job_id) <= 64 else None
    if body is None:
        raise Refused("not_found", "You have no submission with this id.")
    return json_response(body, 200)
