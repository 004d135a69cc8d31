"""Accounts: registration, password checks, profile lookups."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError

from scoreboard.errors import Refused
from scoreboard.models import users
from scoreboard.settings import Settings


@dataclass(frozen=True)
class User:
    id: int
    username: str
    score: int
    has_score: bool
    is_admin: bool
    banned: bool


def make_hasher(settings: Settings) -> PasswordHasher:
    """Argon2id with the configured cost (OWASP's minimum by default)."""
    return PasswordHasher(
        time_cost=settings.sessions.argon2_time_cost,
        memory_cost=settings.sessions.argon2_memory_kib,
        parallelism=settings.sessions.argon2_parallelism,
    )


# A hash to verify against when the username is unknown, so that the answer takes as
# long as for a known one and does not reveal which usernames exist.
_DUMMY_HASHES: dict[int, str] = {}


def register(engine: Engine, hasher: PasswordHasher, username: str, password: str) -> User:
    """Create an account.

    Raises:
        Refused: ``username_taken``.
    """
    password_hash = hasher.hash(password)
    try:
        with engine.begin() as conn:
            row = conn.execute(
                insert(users).values(username=username, password_hash=password_hash).returning(users.c.id)
            ).one()
    except (IntegrityError, DataError) as exc:
        if isinstance(exc, IntegrityError) and getattr(exc.orig, "pgcode", None) == "23505":  # unique_violation
            raise Refused("username_taken", "That username is taken.") from None
        # the CHECK constraint or the column's length: what the schema should have refused
        raise Refused("invalid_request", "Usernames are 3 to 32 letters, digits, '.', '_' or '-'.") from None
    return User(row.id, username, 0, False, False, False)


def authenticate(engine: Engine, hasher: PasswordHasher, username: str, password: str) -> User:
    """Return the user whose password this is.

    Raises:
        Refused: ``invalid_credentials`` for an unknown user or a wrong password alike.
    """
    with engine.connect() as conn:
        row = conn.execute(select(users).where(_named(username))).one_or_none()
    if row is None:
        dummy = _DUMMY_HASHES.get(id(hasher))
        if dummy is None:
            dummy = _DUMMY_HASHES[id(hasher)] = hasher.hash("not a password")
        try:
            hasher.verify(dummy, password)
        except VerificationError:
            pass
        raise Refused("invalid_credentials")
    try:
        hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise Refused("invalid_credentials") from None
    if hasher.check_needs_rehash(row.password_hash):
        with engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == row.id).values(password_hash=hasher.hash(password)))
    return _user(row)


def get_user(engine: Engine, user_id: int) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).one_or_none()
    return None if row is None else _user(row)


def set_admin(engine: Engine, username: str, is_admin: bool) -> bool:
    """Grant or revoke the admin role; False when there is no such user."""
    with engine.begin() as conn:
        result = conn.execute(update(users).where(_named(username)).values(is_admin=is_admin))
    return result.rowcount == 1


def _named(username: str):
    """The user of that name, whatever its case (names are unique regardless of case)."""
    return func.lower(users.c.username) == func.lower(username)


def _user(row) -> User:
    return User(
        id=row.id,
        username=row.username,
        score=row.current_score,
        has_score=row.score_reached_at is not None,
        is_admin=row.is_admin,
        banned=row.banned,
    )
