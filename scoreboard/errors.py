"""Domain errors. The web layer maps each ``code`` to the contract's status."""

from __future__ import annotations


# The sentence of each refusal that more than one rule gives (the web's check, the
# atomic accept, the worker's authoritative check), written once.
MESSAGES = {
    "token_unknown": "This action token is unknown or was issued to someone else.",
    "token_used": "This action token has already been used.",
    "bad_signature": "The signature does not match this submission.",
    "token_expired": "The action token's time limit has passed.",
    "invalid_score": "score_delta is outside the range allowed for this action type.",
    "invalid_credentials": "Wrong username or password.",
    "user_banned": "This account is banned.",
    "queue_full": "Too many submissions are waiting; try again shortly.",
    "not_replicated": ("The submission was accepted but no Redis replica confirmed it in time: look it up"
                       " (status_url) before submitting again."),
    "token_not_replicated": "No Redis replica confirmed the new action token in time; start the action again.",
    "period_overlap": "This season overlaps another season of the board, or reuses its key.",
}


class Refused(Exception):
    """A request the rules refuse; ``code`` is the contract's snake_case error code.

    Args:
        code: the contract's error code, e.g. ``token_used``.
        message: a human sentence for the client (default: the code's sentence in ``MESSAGES``).
        **details: more members of the error body (the ``job_id`` of a submission that was
            accepted all the same).
    """

    def __init__(self, code: str, message: str | None = None, **details: str):
        message = MESSAGES[code] if message is None else message
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


class Unavailable(Exception):
    """A backing service (Redis or PostgreSQL) cannot be reached right now."""
