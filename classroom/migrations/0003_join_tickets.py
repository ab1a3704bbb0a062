"""classroom: join_tickets (short-lived single-use tickets that open a signaling socket)

Revision ID: classroom_0003
Revises: classroom_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.db import UTCDateTime

revision = "classroom_0003"
down_revision = "classroom_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "join_tickets",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("ticket_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(),
                  sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_join_tickets_user_id_users"),
                  nullable=False),
        sa.Column("live_session_id", sa.Uuid(),
                  sa.ForeignKey("live_sessions.id", ondelete="CASCADE",
                                name="fk_join_tickets_live_session_id_live_sessions"), nullable=False),
        sa.Column("auth_session_id", sa.Uuid(),
                  sa.ForeignKey("auth_sessions.id", ondelete="CASCADE",
                                name="fk_join_tickets_auth_session_id_auth_sessions"), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("ticket_hash", name="uq_join_tickets_ticket_hash"),
    )
    op.create_index("ix_join_tickets_user_id", "join_tickets", ["user_id"])
    op.create_index("ix_join_tickets_expires_at", "join_tickets", ["expires_at"])


def downgrade() -> None:
    op.drop_table("join_tickets")
