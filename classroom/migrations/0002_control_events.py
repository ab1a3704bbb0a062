"""classroom: session_control_events (mute/unmute/remove/readmit of a participant, append-only)

Revision ID: classroom_0002
Revises: classroom_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.db import UTCDateTime

revision = "classroom_0002"
down_revision = "classroom_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_control_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(),
                  sa.ForeignKey("live_sessions.id", ondelete="CASCADE",
                                name="fk_session_control_events_session_id_live_sessions"),
                  nullable=False),
        sa.Column("user_id", sa.Uuid(),
                  sa.ForeignKey("users.id", name="fk_session_control_events_user_id_users"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("by_user_id", sa.Uuid(),
                  sa.ForeignKey("users.id", name="fk_session_control_events_by_user_id_users"), nullable=True),
        sa.Column("reason", sa.String(300), nullable=True),
    )
    op.create_index("ix_session_control_events_session_user_at", "session_control_events",
                    ["session_id", "user_id", "at"])
    op.create_index("ix_session_control_events_user_id", "session_control_events", ["user_id"])


def downgrade() -> None:
    op.drop_table("session_control_events")
