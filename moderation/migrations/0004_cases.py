"""moderation review: one case per participant, live session and category

A review item becomes a case: the flags of one participant in one live session and one category
gather in it while the class runs (``moderation_case_flags`` says which flag is in which case),
so ``slice_id`` is no longer unique (it names the case's first slice). ``case_key`` is set on
cases made from now on; a partial unique index keeps one undecided case per key, so two slices
closing at once cannot open two cases. Items made before this revision get their flags listed
and stay one-slice cases (no key: nothing joins them).

Revision ID: moderation_0004
Revises: moderation_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.db import UTCDateTime

revision = "moderation_0004"
down_revision = "moderation_0003"
branch_labels = None
depends_on = None

OPEN_SQL = "status IN ('new', 'escalated', 'appealed')"
UNDECIDED_SQL = "status IN ('new', 'escalated') AND case_key IS NOT NULL"


def _queue_index() -> None:
    op.create_index(
        "ix_review_items_queue", "moderation_review_items",
        [sa.text("priority DESC"), sa.text("max_severity_rank DESC"), "created_at", "id"],
        postgresql_where=sa.text(OPEN_SQL), sqlite_where=sa.text(OPEN_SQL),
    )


def upgrade() -> None:
    # SQLite rebuilds the table in batch mode; the partial queue index is dropped and made again
    # by hand so its WHERE clause survives the rebuild.
    op.drop_index("ix_review_items_queue", table_name="moderation_review_items")
    with op.batch_alter_table("moderation_review_items") as batch:
        batch.drop_constraint("uq_moderation_review_items_slice_id", type_="unique")
        batch.add_column(sa.Column("case_key", sa.String(120), nullable=True))
        batch.add_column(sa.Column("slice_count", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("last_flag_at", UTCDateTime(), nullable=True))
    _queue_index()
    op.create_index("ix_review_items_slice_id", "moderation_review_items", ["slice_id"])
    op.create_index("uq_review_items_undecided_case", "moderation_review_items", ["case_key"], unique=True,
                    postgresql_where=sa.text(UNDECIDED_SQL), sqlite_where=sa.text(UNDECIDED_SQL))
    op.create_table(
        "moderation_case_flags",
        sa.Column("flag_id", sa.Uuid(), sa.ForeignKey("moderation_flags.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("item_id", sa.Uuid(), sa.ForeignKey("moderation_review_items.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("slice_id", sa.Uuid(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_moderation_case_flags_item_at", "moderation_case_flags", ["item_id", "at"])
    op.create_index("ix_moderation_case_flags_slice_id", "moderation_case_flags", ["slice_id"])
    # Earlier items: each held the flags of its one slice.
    op.execute(
        "INSERT INTO moderation_case_flags (flag_id, item_id, slice_id, at, added_at) "
        "SELECT f.id, i.id, f.slice_id, f.created_at, f.created_at FROM moderation_flags f "
        "JOIN moderation_review_items i ON i.slice_id = f.slice_id"
    )


def downgrade() -> None:
    op.drop_table("moderation_case_flags")
    op.drop_index("uq_review_items_undecided_case", table_name="moderation_review_items")
    op.drop_index("ix_review_items_slice_id", table_name="moderation_review_items")
    op.drop_index("ix_review_items_queue", table_name="moderation_review_items")
    with op.batch_alter_table("moderation_review_items") as batch:
        batch.drop_column("last_flag_at")
        batch.drop_column("slice_count")
        batch.drop_column("case_key")
        batch.create_unique_constraint("uq_moderation_review_items_slice_id", ["slice_id"])
    _queue_index()
