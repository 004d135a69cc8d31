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


def usernames(engine: Engine, user_ids) -> dict[int, str]:
    """The names of these users (ids that do not exist are left out)."""
    ids = sorted({int(i) for i in user_ids})
    if not ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(select(users.c.id, users.c.username).where(users.c.id.in_(ids))).all()
    return {row.id: row.username for row in rows}


@dataclass(frozen=True)
class UserPage:
    """One page of users for the admins, and the cursor of the next (None on the last page)."""

    users: list[dict]
    next_before: int | None


def list_users(engine: Engine, *, search: str | None = None, banned: bool | None = None, before: int | None = None,
               limit: int = 50) -> UserPage:
    """Users newest first (by id), keyset-paged like the flags.

    Args:
        engine: where to read: the primary, or the replica router.
        search: only names containing this text, whatever its case.
        banned: only banned (True) or only not banned (False) users.
        before: only users with a smaller id (the cursor).
        limit: page size.
    """
    query = select(users.c.id, users.c.username, users.c.current_score, users.c.banned, users.c.is_admin)
    if search:
        query = query.where(func.strpos(func.lower(users.c.username), search.lower()) > 0)
    if banned is not None:
        query = query.where(users.c.banned.is_(banned))
    if before is not None:
        query = query.where(users.c.id < before)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(users.c.id.desc()).limit(limit + 1)).all()
    page = [{"id": row.id, "username": row.username, "score": row.current_score, "banned": row.banned,
             "is_admin": row.is_admin} for row in rows[:limit]]
    return UserPage(page, rows[limit - 1].id if len(rows) > limit else None)
