"""Accepted submissions and their batches: one owner of their life in Redis.

A submission is *accepted* by the web (its action token burnt, the submission stored and
put in the open batch; ``lua/accept.lua``), its batch is *sealed* by the worker that takes
its apply job (``lua/seal.lua``), and once the transaction has committed its result is
recorded with the board by ``lua/publish.lua``, which also settles the batch. A batch that
fails is *split* into batches of one; a batch that fails for good has its submissions
*marked failed* for their clients; a batch whose job was lost is failed by the purge. The
pending count (submissions accepted and not yet settled) follows each of these steps.

``Submissions`` holds the Redis connection, the scripts and the keys, as RQ's ``Queue``
holds its connection; every change of a submission's state goes through it (or through
the publish script, atomically with the board).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import orjson
import redis

from scoreboard.action_tokens import ActionToken, now_ms
from scoreboard.errors import MESSAGES, Refused
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts


@dataclass(frozen=True)
class Accepted:
    """What accepting a submission did.

    Attributes:
        submission_id: the submission's id (the contract's ``job_id``).
        batch_id: the batch it joined.
        new_batch: whether it opened that batch (then its apply job must be enqueued).
        accepted_at: the server's clock when it was accepted (unix ms).
    """

    submission_id: str
    batch_id: str
    new_batch: bool
    accepted_at: int


@dataclass(frozen=True)
class Submission:
    """One stored submission, as the apply stage reads it."""

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


# The fields of a stored submission that the apply stage reads, in the order of ``_parse``.
FIELDS = ("user_id", "token", "action_type", "delta", "completed_at", "issued_at", "accepted_at", "state",
          "request_id")


class Submissions:
    """The accepted submissions and their batches.

    Args:
        r: the Redis client.
        scripts: the registered scripts of ``r``.
        keys: the key names.
    """

    def __init__(self, r: redis.Redis, scripts: Scripts, keys: Keys):
        self.redis = r
        self.scripts = scripts
        self.keys = keys

    # ------------------------------------------------------------------ the web

    def accept(self, record: ActionToken, score_delta: int, completed_at: int, batch_max: int,
               pending_cap: int = 0, request_id: str = "") -> Accepted:
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
        k = self.keys
        reply = self.scripts.accept(
            keys=[k.action_token(record.token), k.submission(submission_id), k.batch_open, k.batch_seq, k.batches,
                  k.pending_count],
            args=[record.user_id, batch_max, now, k.batch_prefix, submission_id, pending_cap, *fields],
        )
        status = reply[0].decode()
        if status == "queue_full":
            raise Refused("unavailable", MESSAGES["queue_full"])
        if status != "ok":
            raise Refused(status)  # token_used, token_unknown
        return Accepted(submission_id, reply[1].decode(), reply[2] == 1, now)

    def status(self, user_id: int, submission_id: str) -> dict | None:
        """The contract's job status body, or None when it is not this user's submission."""
        owner, state, result, error = self.redis.hmget(self.keys.submission(submission_id), "user_id", "state",
                                                       "result", "error")
        if owner is None or int(owner) != user_id:
            return None
        body = {"job_id": submission_id, "state": state.decode()}
        if result is not None and body["state"] == "applied":
            body["result"] = orjson.loads(result)
        elif error is not None:
            body["error"] = orjson.loads(error)
        return body

    def wait_result(self, submission_id: str, timeout: float) -> dict | None:
        """Block up to ``timeout`` seconds for the worker's result of this submission."""
        if timeout <= 0:
            return None
        reply = self.redis.blpop([self.keys.done(submission_id)], timeout=timeout)
        return None if reply is None else orjson.loads(reply[1])

    def pending(self) -> int:
        """Submissions accepted and not yet settled."""
        return int(self.redis.get(self.keys.pending_count) or 0)

    # ------------------------------------------------------------------ the workers

    def seal(self, batch_id: str) -> list[Submission]:
        """Seal the batch (no more submissions join it) and read its submissions, in one round trip.

        Returns:
            The batch's stored submissions in the order they were accepted; ids whose record
            is gone are skipped.
        """
        reply = self.scripts.seal(keys=[self.keys.batch_open, self.keys.batch(batch_id)],
                                  args=[batch_id, self.keys.submission_prefix, *FIELDS])
        parsed = (_parse(row[0].decode(), row[1:]) for row in reply)
        return [s for s in parsed if s is not None]

    def settle_keys(self, batch_id: str) -> list[str]:
        """The keys with which ``lua/publish.lua`` settles ``batch_id`` (its list, the set of
        open batches, the pending count, the set of failed batches), in that order."""
        return [self.keys.batch(batch_id), self.keys.batches, self.keys.pending_count, self.keys.batches_failed]

    def split(self, batch_id: str, submission_ids: list[str]) -> list[str]:
        """Give each submission of a failed batch a batch of its own, and forget the old one.

        Returns:
            The new batches' ids (``<batch>-<submission>``; see ``jobspec.is_split_batch``),
            each to be given an apply job.
        """
        k = self.keys
        created = []
        # the new batches keep the old one's place: the closing watermark still waits for them
        opened = self.redis.zscore(k.batches, batch_id) or self.redis.time()[0] * 1000
        for sid in submission_ids:
            new_id = f"{batch_id}-{sid[:12]}"
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(k.batch(new_id))
            pipe.rpush(k.batch(new_id), sid)
            pipe.hset(k.submission(sid), "batch", new_id)
            pipe.zadd(k.batches, {new_id: opened})
            pipe.execute()
            created.append(new_id)
        self.forget(batch_id)
        return created

    def mark_failed(self, batch_id: str, error: bytes) -> list[str]:
        """After an apply job's last attempt: every submission of the batch is ``failed``,
        with ``error`` for its client. The batch stays, so that its job can be requeued, but
        among the failed ones: it no longer holds the closing watermark.

        Returns:
            The ids of the batch's submissions.
        """
        k = self.keys
        ids = [i.decode() for i in self.redis.lrange(k.batch(batch_id), 0, -1)]
        opened = self.redis.zscore(k.batches, batch_id)
        pipe = self.redis.pipeline(transaction=True)
        for sid in ids:
            pipe.hset(k.submission(sid), mapping={"state": "failed", "error": error})
        if opened is not None:
            pipe.zrem(k.batches, batch_id)
            pipe.zadd(k.batches_failed, {batch_id: opened})
        pipe.execute()
        return ids

    def forget(self, batch_id: str) -> None:
        """Drop a batch whose submissions are all settled or moved to other batches."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.keys.batch(batch_id))
        pipe.zrem(self.keys.batches, batch_id)
        pipe.zrem(self.keys.batches_failed, batch_id)
        pipe.execute()

    # ------------------------------------------------------------------ the admins

    def held(self, batch_ids: list[str]) -> list[list[Submission]]:
        """The stored submissions of each batch, in the order accepted (ids whose record is
        gone are skipped), in two round trips whatever the number of batches."""
        if not batch_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for batch_id in batch_ids:
            pipe.lrange(self.keys.batch(batch_id), 0, -1)
        lists = [[i.decode() for i in ids] for ids in pipe.execute()]
        pipe = self.redis.pipeline(transaction=False)
        for sid in (sid for ids in lists for sid in ids):
            pipe.hmget(self.keys.submission(sid), FIELDS)
        values = iter(pipe.execute() if any(lists) else ())
        parsed = [[_parse(sid, next(values)) for sid in ids] for ids in lists]
        return [[s for s in batch if s is not None] for batch in parsed]

    # ------------------------------------------------------------------ the purge

    def fail_lost(self, submission_keys: list[str], error: bytes, ttl: int) -> None:
        """Mark submissions whose batch is gone ``failed`` (their clients hear it), to expire."""
        pipe = self.redis.pipeline(transaction=False)
        for key in submission_keys:
            pipe.hset(key, mapping={"state": "failed", "error": error})
            pipe.expire(key, ttl)
        pipe.execute()

    def drop(self, batch_id: str, error: bytes, ttl: int) -> int:
        """Drop a batch nobody can requeue any more, failing what of it was not settled.

        Returns:
            How many submissions the batch held.
        """
        k = self.keys
        ids = [i.decode() for i in self.redis.lrange(k.batch(batch_id), 0, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for sid in ids:
            pipe.hget(k.submission(sid), "state")
        states = pipe.execute()
        pipe = self.redis.pipeline(transaction=True)
        for sid, state in zip(ids, states):
            if state in (b"queued", b"failed"):  # never rewrite a settled one; never create a hash
                pipe.hset(k.submission(sid), mapping={"state": "failed", "error": error})
                pipe.expire(k.submission(sid), ttl)
        pipe.delete(k.batch(batch_id))
        pipe.zrem(k.batches, batch_id)
        pipe.zrem(k.batches_failed, batch_id)
        if ids:
            pipe.decrby(k.pending_count, len(ids))
        pipe.execute()
        return len(ids)


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
