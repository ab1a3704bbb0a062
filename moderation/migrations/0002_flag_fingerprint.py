"""moderation: flags keyed by (slice, rule, start, fingerprint)

Two hits of one rule can start at the same time (two phone numbers on one slide, two in one
speech segment); keyed by (slice, rule, start) alone the second would be dropped as a duplicate.

Revision ID: moderation_0002
Revises: moderation_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "moderation_0002"
down_revision = "moderation_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("moderation_flags") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(32), nullable=False, server_default=""))
        batch.drop_constraint("uq_flags_slice_rule_start", type_="unique")
        batch.create_unique_constraint(
            "uq_flags_slice_rule_start_fp", ["slice_id", "rule_id", "start_ms", "fingerprint"]
        )


def downgrade() -> None:
    with op.batch_alter_table("moderation_flags") as batch:
        batch.drop_constraint("uq_flags_slice_rule_start_fp", type_="unique")
        batch.create_unique_constraint("uq_flags_slice_rule_start", ["slice_id", "rule_id", "start_ms"])
        batch.drop_column("fingerprint")
