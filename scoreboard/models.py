"""The PostgreSQL schema (SQLAlchemy Core metadata), with the names of seed flow 7."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

# What the API promises, held by CHECK constraints (migration 0004).
USERNAME_SQL_PATTERN = "^[A-Za-z0-9_.-]{3,32}$"  # POSIX: ``$`` is the end of the text
HISTORY_REASONS = ("submission", "revert", "ban", "unban")
FLAG_STATES = ("open", "approved", "reverted")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True),
    # The API's rule (web/schemas.py USERNAME_PATTERN), held by PostgreSQL too; unique
    # regardless of case through ``uq_users_username_lower`` below.
    Column("username", String(32), CheckConstraint(f"username ~ '{USERNAME_SQL_PATTERN}'", name="username_allowed"),
           nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("current_score", BigInteger, nullable=False, server_default=text("0")),
    # When the user reached current_score (ties on the board: earlier first); NULL until
    # the first applied submission, so users who never scored are not on the board.
    Column("score_reached_at", DateTime(timezone=True)),
    # id of the user's latest score_history row: orders updates of one user in Redis.
    Column("last_history_id", BigInteger, nullable=False, server_default=text("0")),
    Column("is_admin", Boolean, nullable=False, server_default=text("false")),
    Column("banned", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

Index("uq_users_username_lower", func.lower(users.c.username), unique=True)

Index(
    "ix_users_board",
    users.c.current_score.desc(),
    users.c.score_reached_at.asc(),
    users.c.id.desc(),
    postgresql_where=text("score_reached_at IS NOT NULL AND NOT banned"),
)

score_history = Table(
    "score_history",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    # The action token that earned the change (NULL for an admin revert).
    Column("action_id", String(64)),
    Column("action_type", String(64)),
    Column("score_change", BigInteger, nullable=False),
    Column("new_score", BigInteger, nullable=False),
    Column("submission_id", String(64)),
    # 'submission', or an admin's 'revert', 'ban', 'unban' (the last two change no points).
    Column("reason", String(16), CheckConstraint(f"reason IN {HISTORY_REASONS}", name="reason_known"),
           nullable=False, server_default=text("'submission'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A user's recent history, newest first: the anomaly rules' rate and delta history.
Index("ix_score_history_user_recent", score_history.c.user_id, score_history.c.created_at)

action_tokens = Table(
    "action_tokens",
    metadata,
    # The primary key is what makes a token count once, whatever is retried or replayed.
    Column("token", String(64), primary_key=True),
    Column("used", Boolean, nullable=False, server_default=text("true")),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("action_type", String(64), nullable=False),
    Column("submission_id", String(64), nullable=False),
    Column("history_id", BigInteger),
    Column("issued_at", DateTime(timezone=True)),
    Column("used_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

score_flags = Table(
    "score_flags",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False, index=True),
    Column("history_id", BigInteger, ForeignKey("score_history.id"), nullable=False),
    Column("submission_id", String(64), nullable=False),
    Column("action_id", String(64), nullable=False),
    Column("score_change", BigInteger, nullable=False),
    # {"rule_name": {figures...}, ...}
    Column("rules", JSONB, nullable=False),
    Column("state", String(16), CheckConstraint(f"state IN {FLAG_STATES}", name="state_known"),
           nullable=False, server_default=text("'open'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolved_by", BigInteger, ForeignKey("users.id")),
)

Index("ix_score_flags_state_created", score_flags.c.state, score_flags.c.created_at.desc())
