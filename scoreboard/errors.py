"""Domain errors. The web layer maps each ``code`` to the contract's status."""

from __future__ import annotations


class Refused(Exception):
    """A request the rules refuse; ``code`` is the contract's snake_case error code.

    Args:
        code: the contract's error code, e.g. ``token_used``.
        message: a human sentence for the client.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Unavailable(Exception):
    """A backing service (Redis or PostgreSQL) cannot be reached right now."""
