"""The apply stage without HTTP: an Applier on its own Redis prefix, users made in SQL,
submissions accepted as the web accepts them."""

import dataclasses
import secrets

from scoreboard import action_tokens
from scoreboard.anomaly import Thresholds
from scoreboard.apply import Applier
from scoreboard.db import make_engine
from scoreboard.redis_client import Keys
from scoreboard.scripts import Scripts
from tests.conftest import reset_state

LIMITS = Thresholds(rate_window=60, rate_count=5, zscore=3.5, zscore_min_samples=5, zscore_history=20,
                    jump_top=2, jump_from_rank=5)


def new_applier(database_url, r, settings, name: str) -> Applier:
    """An Applier with small anomaly thresholds (``LIMITS``) on an emptied prefix of its own."""
    prefix = f"{settings.redis_prefix}{name}:"
    reset_state(database_url, r, prefix)
    return Applier(make_engine(settings), r, Scripts(r), Keys(prefix), settings.actions.by_name,
                   settings.batching.result_ttl, settings.board_cache_ttl, limits=LIMITS)


def make_user(db, score=None):
    """A user made in SQL; with ``score``, on the board with one history row of it."""
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO users (username, password_hash, current_score, score_reached_at)"
            " VALUES (%s, 'x', %s, CASE WHEN %s THEN now() END) RETURNING id",
            (secrets.token_hex(4), score or 0, score is not None))
        uid = cur.fetchone()[0]
        if score:
            cur.execute("INSERT INTO score_history (user_id, score_change, new_score, reason)"
                        " VALUES (%s, %s, %s, 'submission')", (uid, score, score))
        return uid


def submit(applier, settings, user_id, delta, action_type="tap", elapsed_ms=60_000, completed_at=None):
    """Issue a token and accept a submission for it, as the web does, ``elapsed_ms`` after
    the token was issued by the server's clock (its ``issued_at`` is moved back by that
    much); the client says it completed at ``completed_at`` (default: on acceptance)."""
    record = action_tokens.issue(applier.redis, applier.keys, settings, user_id,
                                 settings.actions.by_name[action_type])
    record = dataclasses.replace(record, issued_at=record.issued_at - elapsed_ms)
    completed = completed_at if completed_at is not None else record.issued_at + elapsed_ms
    return applier.submissions.accept(record, delta, completed, 50)
