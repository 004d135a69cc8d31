"""Constraints for what the API promises: usernames, flag states, history reasons

The database held data the API would refuse: a username with a trailing newline passed
the old pattern check and broke the board's JSON. PostgreSQL now refuses what the
schemas refuse:

- ``users.username`` matches ``^[A-Za-z0-9_.-]{3,32}$`` (POSIX ``$``: the end of the text)
  and is unique regardless of case (a unique index on ``lower(username)``, which also
  serves the case-insensitive lookups of login and grant-admin);
- ``score_flags.state`` is one of open, approved, reverted;
- ``score_history.reason`` is one of submission, revert, ban, unban.

Rows already there that break the username rules are renamed before the constraints are
added, each to a name that stays recognisable (characters outside the alphabet become
``_``; a name that then clashes, case-insensitively, gets ``-<id>``), and every rename is
logged; the older account of two that differ only by case keeps its name. Flag states and
history reasons were only ever written by the service, so no row needs changing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:30:00
"""
import logging
import re

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
OUTSIDE = re.compile(r"[^A-Za-z0-9_.-]")


def _clean(name: str) -> str:
    cleaned = OUTSIDE.sub("_", name)[:32]
    return cleaned + "_" * (3 - len(cleaned))


def _free(conn, name: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM users WHERE lower(username) = lower(:n)"), {"n": name}).first() is None


def _rename_what_breaks_the_rules(conn) -> None:
    offenders = conn.execute(sa.text(
        "SELECT id, username FROM users WHERE username !~ '^[A-Za-z0-9_.-]{3,32}$'"
        " OR id IN (SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY lower(username) ORDER BY id) AS n"
        "                           FROM users) AS ranked WHERE n > 1)"
        " ORDER BY id"
    )).all()
    for uid, old in offenders:
        candidate = _clean(old)
        if not (USERNAME.fullmatch(candidate) and _free(conn, candidate)):
            suffix = f"-{uid}"
            candidate = _clean(old)[:32 - len(suffix)] + suffix
        if not _free(conn, candidate):
            candidate = f"user-{uid}"
        conn.execute(sa.text("UPDATE users SET username = :n WHERE id = :id"), {"n": candidate, "id": uid})
        log.warning("renamed user %d from %r to %r: the old name breaks the username rules", uid, old, candidate)


def upgrade() -> None:
    conn = op.get_bind()
    _rename_what_breaks_the_rules(conn)
    op.create_check_constraint(op.f("ck_users_username_allowed"), "users", "username ~ '^[A-Za-z0-9_.-]{3,32}$'")
    op.create_index("uq_users_username_lower", "users", [sa.text("lower(username)")], unique=True)
    op.drop_constraint("uq_users_username", "users", type_="unique")
    op.create_check_constraint(op.f("ck_score_flags_state_known"), "score_flags", "state IN ('open', 'approved', 'reverted')")
    op.create_check_constraint(op.f("ck_score_history_reason_known"), "score_history", "reason IN ('submission', 'revert', 'ban', 'unban')")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_score_history_reason_known"), "score_history", type_="check")
    op.drop_constraint(op.f("ck_score_flags_state_known"), "score_flags", type_="check")
    op.create_unique_constraint("uq_users_username", "users", ["username"])
    op.drop_index("uq_users_username_lower", table_name="users")
    op.drop_constraint(op.f("ck_users_username_allowed"), "users", type_="check")
