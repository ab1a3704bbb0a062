"""moderation: stage runs, slice analyses, flags, policy versions

Revision ID: moderation_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.db import UTCDateTime

revision = "moderation_0001"
down_revision = None
branch_labels = ("moderation",)
depends_on = ("classroom_0001", "accounts_0001")


def upgrade() -> None:
    op.create_table(
        "moderation_stage_runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("slice_id", sa.Uuid(), sa.ForeignKey("slices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.UniqueConstraint("slice_id", "stage", name="uq_stage_runs_slice_stage"),
    )
    op.create_index("ix_moderation_stage_runs_slice_id", "moderation_stage_runs", ["slice_id"])
    op.create_table(
        "moderation_slice_analyses",
        sa.Column("slice_id", sa.Uuid(), sa.ForeignKey("slices.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("ocr", sa.JSON(), nullable=False),
        sa.Column("faces", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("policy_version", sa.String(64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "moderation_flags",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("slice_id", sa.Uuid(), sa.ForeignKey("slices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("class_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(80), nullable=False),
        sa.Column("rule_version", sa.String(32), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("severity_rank", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("start_ms", sa.Integer(), nullable=False),
        sa.Column("end_ms", sa.Integer(), nullable=False),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("auto_action", sa.String(40), nullable=True),
        sa.Column("automated_detection", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("slice_id", "rule_id", "start_ms", name="uq_flags_slice_rule_start"),
    )
    for col in ("slice_id", "user_id", "session_id", "class_id", "category", "rule_id"):
        op.create_index(f"ix_moderation_flags_{col}", "moderation_flags", [col])
    op.create_table(
        "moderation_policies",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Uuid(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("version", name="uq_moderation_policies_version"),
    )


def downgrade() -> None:
    op.drop_table("moderation_policies")
    op.drop_table("moderation_flags")
    op.drop_table("moderation_slice_analyses")
    op.drop_table("moderation_stage_runs")
