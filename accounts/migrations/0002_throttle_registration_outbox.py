"""accounts: one throttle table, pending registrations, the outbox, users.language

Replaces ``login_attempts`` (one row per failure, counted by SELECT: not atomic) with counters
that are reserved by a conditional UPDATE.

Revision ID: accounts_0002
Revises: accounts_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.db import UTCDateTime

revision = "accounts_0002"
down_revision = "accounts_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("login_attempts")
    op.create_table(
        "throttle_counters",
        sa.Column("key", sa.String(160), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.Column("blocked_until", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "pending_registrations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("contact_key", sa.String(80), nullable=False),
        sa.Column("payload_ct", sa.LargeBinary(), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("for_existing", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_pending_registrations_contact", "pending_registrations", ["contact_key", "created_at"])
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("recipient_ct", sa.LargeBinary(), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body_ct", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
    )
    op.create_index("ix_outbox_messages_status", "outbox_messages", ["status", "created_at"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(8), nullable=False, server_default="en"))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
    op.drop_table("outbox_messages")
    op.drop_table("pending_registrations")
    op.drop_table("throttle_counters")
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_login_attempts_key_at", "login_attempts", ["key", "at"])
