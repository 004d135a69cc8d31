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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

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
    # When the web accepted the submission (its 202): what decides the period it counts in.
    Column("accepted_at", DateTime(timezone=True)),
    # The board periods it counted on, as 'board/period' (NULL before boards existed: all-time).
    Column("counted_on", ARRAY(String(65))),
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

# --- boards: periods and their standings (the all-time board is ``users.current_score``) ---

board_periods = Table(
    "board_periods",
    metadata,
    Column("board", String(32), primary_key=True),
    Column("key", String(32), primary_key=True),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True)),  # NULL: never ends (all-time)
    # A season, defined by an admin (the calendar and fixed periods follow from the settings).
    Column("season", Boolean, nullable=False, server_default=text("false")),
    # When its standings became final (NULL: open or closing); an admin's revert after that
    # stamps revised_at.
    Column("closed_at", DateTime(timezone=True)),
    Column("revised_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

Index("ix_board_periods_closed", board_periods.c.board, board_periods.c.starts_at.desc(),
      postgresql_where=text("closed_at IS NOT NULL"))

board_scores = Table(
    "board_scores",
    metadata,
    Column("board", String(32), primary_key=True),
    Column("period", String(32), primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id"), primary_key=True),
    Column("score", BigInteger, nullable=False),
    # When the user reached this score in this period (ties: earlier first).
    Column("reached_at", DateTime(timezone=True), nullable=False),
    # The competition rank in the final standings (written when the period closes).
    Column("final_rank", BigInteger),
)

# The board order of one period: score, then who reached it first, then the higher id.
Index("ix_board_scores_order", board_scores.c.board, board_scores.c.period, board_scores.c.score.desc(),
      board_scores.c.reached_at.asc(), board_scores.c.user_id.desc())
