"""classroom: classes, enrollments, live sessions, participants, recording events, slices

Revision ID: classroom_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.db import UTCDateTime

revision = "classroom_0001"
down_revision = None
branch_labels = ("classroom",)
depends_on = ("accounts_0001",)

_LIVE = sa.text("status = 'live'")


def upgrade() -> None:
    op.create_table(
        "classes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("teacher_id", sa.Uuid(), sa.ForeignKey("users.id", name="fk_classes_teacher_id_users"),
                  nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("scheduled_start", UTCDateTime(), nullable=True),
        sa.Column("scheduled_end", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_classes_teacher_id", "classes", ["teacher_id"])

    op.create_table(
        "enrollments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("class_id", sa.Uuid(),
                  sa.ForeignKey("classes.id", ondelete="CASCADE", name="fk_enrollments_class_id_classes"),
                  nullable=False),
        sa.Column("student_id", sa.Uuid(), sa.ForeignKey("users.id", name="fk_enrollments_student_id_users"),
                  nullable=False),
        sa.UniqueConstraint("class_id", "student_id", name="uq_enrollments_class_student"),
    )
    op.create_index("ix_enrollments_class_id", "enrollments", ["class_id"])
    op.create_index("ix_enrollments_student_id", "enrollments", ["student_id"])

    op.create_table(
        "live_sessions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("class_id", sa.Uuid(),
                  sa.ForeignKey("classes.id", ondelete="CASCADE", name="fk_live_sessions_class_id_classes"),
                  nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("started_by", sa.Uuid(), sa.ForeignKey("users.id", name="fk_live_sessions_started_by_users"),
                  nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("ended_by", sa.Uuid(), sa.ForeignKey("users.id", name="fk_live_sessions_ended_by_users"),
                  nullable=True),
        sa.Column("end_reason", sa.String(200), nullable=True),
    )
    op.create_index("ix_live_sessions_class_id", "live_sessions", ["class_id"])
    op.create_index("uq_live_sessions_one_live", "live_sessions", ["class_id"], unique=True,
                    sqlite_where=_LIVE, postgresql_where=_LIVE)

    op.create_table(
        "session_participants",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(),
                  sa.ForeignKey("live_sessions.id", ondelete="CASCADE",
                                name="fk_session_participants_session_id_live_sessions"),
                  nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", name="fk_session_participants_user_id_users"),
                  nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("joined_at", UTCDateTime(), nullable=False),
        sa.Column("left_at", UTCDateTime(), nullable=True),
        sa.Column("left_reason", sa.String(40), nullable=True),
    )
    op.create_index("ix_session_participants_session_user", "session_participants", ["session_id", "user_id"])
    op.create_index("ix_session_participants_user_id", "session_participants", ["user_id"])

    op.create_table(
        "recording_events",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(),
                  sa.ForeignKey("live_sessions.id", ondelete="CASCADE",
                                name="fk_recording_events_session_id_live_sessions"),
                  nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", name="fk_recording_events_user_id_users"),
                  nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("by", sa.String(16), nullable=False),
        sa.Column("by_user_id", sa.Uuid(), sa.ForeignKey("users.id", name="fk_recording_events_by_user_id_users"),
                  nullable=True),
        sa.Column("reason", sa.String(300), nullable=True),
    )
    op.create_index("ix_recording_events_session_at", "recording_events", ["session_id", "at"])
    op.create_index("ix_recording_events_user_id", "recording_events", ["user_id"])

    op.create_table(
        "slices",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("session_id", sa.Uuid(),
                  sa.ForeignKey("live_sessions.id", ondelete="CASCADE", name="fk_slices_session_id_live_sessions"),
                  nullable=False),
        sa.Column("class_id", sa.Uuid(),
                  sa.ForeignKey("classes.id", ondelete="CASCADE", name="fk_slices_class_id_classes"),
                  nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", name="fk_slices_user_id_users"), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("media_key", sa.String(1024), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("close_reason", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("media_deleted_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("session_id", "user_id", "source", "seq", name="uq_slices_session_user_source_seq"),
    )
    op.create_index("ix_slices_session_started", "slices", ["session_id", "started_at"])
    op.create_index("ix_slices_class_id", "slices", ["class_id"])
    op.create_index("ix_slices_user_id", "slices", ["user_id"])
    op.create_index("ix_slices_status", "slices", ["status"])


def downgrade() -> None:
    op.drop_table("slices")
    op.drop_table("recording_events")
    op.drop_table("session_participants")
    op.drop_table("live_sessions")
    op.drop_table("enrollments")
    op.drop_table("classes")
