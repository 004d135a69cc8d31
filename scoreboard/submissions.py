"""Accepted submissions: stored in Redis, grouped into batches for the apply jobs."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import orjson
import redis

from scoreboard.action_tokens import ActionToken, now_ms
from scoreboard.errors import Refused
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts


@dataclass(frozen=True)
class Accepted:
    submission_id: str
    batch_id: str
    new_batch: bool


@dataclass(frozen=True)
class Submission:
    id: str
    user_id: int
    token: str
    action_type: str
    score_delta: int
    completed_at: int
    issued_at: int
    accepted_at: int
    state: str
    request_id: str


def accept(
    r: redis.Redis,
    scripts: Scripts,
    keys: Keys,
    record: ActionToken,
    score_delta: int,
    completed_at: int,
    batch_max: int,
    pending_cap: int = 0,
    request_id: str = "",
) -> Accepted:
    """Burn the token and queue the submission, atomically.

    Raises:
        Refused: ``token_used`` / ``token_unknown`` when the token was used or has
            vanished since it was checked, ``unavailable`` when the queue is full.
    """
    submission_id = secrets.token_hex(16)
    now = now_ms()
    fields = [
        "user_id", record.user_id,
        "token", record.token,
        "action_type", record.action_type,
        "delta", score_delta,
        "completed_at", completed_at,
        "issued_at", record.issued_at,
        "accepted_at", now,
        "state", "queued",
        "request_id", request_id,
    ]
    reply = scripts.accept(
        keys=[
            keys.action_token(record.token),
            keys.submission(submission_id),
            keys.batch_open,
            keys.batch_seq,
            keys.batches,
            keys.pending_count,
        ],
        args=[record.user_id, batch_max, now, keys.batch(""), submission_id, pending_cap, *fields],
    )
    status = reply[0].decode()
    if status == "token_used":
        raise Refused("token_used", "This action token has already been used.")
    if status == "token_unknown":
        raise Refused("token_unknown", "This action token is unknown or was issued to someone else.")
    if status == "queue_full":
        raise Refused("unavailable", "Too many submissions are waiting; try again shortly.")
    return Accepted(submission_id, reply[1].decode(), reply[2] == 1)


# The fields of a stored submission that the apply stage reads, in the order of ``_parse``.
FIELDS = ("user_id", "token", "action_type", "delta", "completed_at", "issued_at", "accepted_at", "state",
          "request_id")


def _parse(sid: str, values: list) -> Submission | None:
    """A submission from its id and its ``FIELDS`` values (None when its record is gone)."""
    user_id, token, action_type, delta, completed_at, issued_at, accepted_at, state, request_id = values
    if user_id is None or user_id is False:
        return None
    return Submission(
        id=sid,
        user_id=int(user_id),
        token=token.decode(),
        action_type=action_type.decode(),
        score_delta=int(delta),
        completed_at=int(completed_at),
        issued_at=int(issued_at),
        accepted_at=int(accepted_at),
        state=state.decode(),
        request_id=request_id.decode() if request_id else "",
    )


def load_many(r: redis.Redis, keys: Keys, submission_ids: list[str]) -> list[Submission]:
    """The stored submissions, in the given order; ids whose record is gone are skipped."""
    pipe = r.pipeline(transaction=False)
    for sid in submission_ids:
        pipe.hmget(keys.submission(sid), FIELDS)
    parsed = (_parse(sid, values) for sid, values in zip(submission_ids, pipe.execute()))
    return [s for s in parsed if s is not None]


def seal_batch(scripts: Scripts, keys: Keys, batch_id: str) -> list[Submission]:
    """Seal the batch (no more submissions join it) and read its submissions, in one round trip.

    Returns:
        The batch's stored submissions in the order they were accepted; ids whose record
        is gone are skipped.
    """
    reply = scripts.seal(keys=[keys.batch_open, keys.batch(batch_id)],
                         args=[batch_id, keys.submission(""), *FIELDS])
    parsed = (_parse(row[0].decode(), row[1:]) for row in reply)
    return [s for s in parsed if s is not None]


def status(r: redis.Redis, keys: Keys, user_id: int, submission_id: str) -> dict | None:
    """The contract's job status body, or None when it is not this user's job."""
    owner, state, result, error = r.hmget(keys.submission(submission_id), "user_id", "state", "result", "error")
    if owner is None or int(owner) != user_id:
        return None
    body = {"job_id": submission_id, "state": state.decode()}
    if result is not None and body["state"] == "applied":
        body["result"] = orjson.loads(result)
    elif error is not None:
        body["error"] = orjson.loads(error)
    return body


def wait_result(r: redis.Redis, keys: Keys, submission_id: str, timeout: float) -> dict | None:
    """Block up to ``timeout`` seconds for the worker's result of this submission."""
    if timeout <= 0:
        return None
    reply = r.blpop([keys.done(submission_id)], timeout=timeout)
    if reply is None:
        return None
    return orjson.loads(reply[1])
