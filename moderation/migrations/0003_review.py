"""moderation review: queue items, decisions, appeals and appeal sessions, strikes, restrictions,
recording opens, the append-only event log

Revision ID: moderation_0003
Revises: moderation_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.db import UTCDateTime

revision = "moderation_0003"
down_revision = "moderation_0002"
branch_labels = None
depends_on = ("accounts_0001", "classroom_0001")

OPEN_SQL = "status IN ('new', 'escalated', 'appealed')"
# Columns of an event that never change; actor/subject ids may only be set to NULL (a cancelled
# person is unlinked from the log, as the access log does).
_FROZEN = ("seq", "at", "kind", "item_id", "decision_id", "appeal_id", "actor_role", "data")

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION moderation_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'moderation_events is append-only: % rejected', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF ({", ".join("NEW." + c for c in _FROZEN if c != "data")}) IS DISTINCT FROM
       ({", ".join("OLD." + c for c in _FROZEN if c != "data")})
       OR NEW.data::text IS DISTINCT FROM OLD.data::text
       OR (NEW.actor_id IS NOT NULL AND NEW.actor_id IS DISTINCT FROM OLD.actor_id)
       OR (NEW.subject_user_id IS NOT NULL AND NEW.subject_user_id IS DISTINCT FROM OLD.subject_user_id) THEN
        RAISE EXCEPTION 'moderation_events is append-only: only unlinking a person (ids to NULL) is allowed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql
"""

_SQLITE_UPDATE_GUARD = f"""
CREATE TRIGGER moderation_events_no_update BEFORE UPDATE ON moderation_events
WHEN {" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _FROZEN)}
   OR (NEW.actor_id IS NOT NULL AND NEW.actor_id IS NOT OLD.actor_id)
   OR (NEW.subject_user_id IS NOT NULL AND NEW.subject_user_id IS NOT OLD.subject_user_id)
BEGIN
    SELECT RAISE(ABORT, 'moderation_events is append-only: only unlinking a person (ids to NULL) is allowed');
END
"""

_SQLITE_DELETE_GUARD = """
CREATE TRIGGER moderation_events_no_delete BEFORE DELETE ON moderation_events
BEGIN
    SELECT RAISE(ABORT, 'moderation_events is append-only: DELETE rejected');
END
"""


def _user_fk(name: str, ondelete: str = "SET NULL", nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Uuid(), sa.ForeignKey("users.id", ondelete=ondelete), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "moderation_review_items",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("slice_id", sa.Uuid(), sa.ForeignKey("slices.id", ondelete="CASCADE"), nullable=False),
        _user_fk("user_id"),
        sa.Column("class_id", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("max_severity_rank", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("categories", sa.String(400), nullable=False),
        sa.Column("rule_ids", sa.String(2000), nullable=False),
        sa.Column("flag_count", sa.Integer(), nullable=False),
        _user_fk("claimed_by"),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("first_claimed_at", UTCDateTime(), nullable=True),
        sa.Column("excluded_moderator_id", sa.Uuid(), nullable=True),
        sa.Column("latest_decision_id", sa.Uuid(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("slice_id", name="uq_moderation_review_items_slice_id"),
    )
    op.create_index(
        "ix_review_items_queue", "moderation_review_items",
        [sa.text("priority DESC"), sa.text("max_severity_rank DESC"), "created_at", "id"],
        postgresql_where=sa.text(OPEN_SQL), sqlite_where=sa.text(OPEN_SQL),
    )
    op.create_index("ix_review_items_user_created", "moderation_review_items", ["user_id", "created_at"])
    op.create_index("ix_moderation_review_items_class_id", "moderation_review_items", ["class_id"])

    op.create_table(
        "moderation_decisions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("item_id", sa.Uuid(), sa.ForeignKey("moderation_review_items.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("slice_id", sa.Uuid(), nullable=False),
        _user_fk("subject_user_id"),
        _user_fk("actor_id"),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=True),
        sa.Column("duration_days", sa.Integer(), nullable=True),
        sa.Column("strike_number", sa.Integer(), nullable=True),
        sa.Column("strike_action", sa.String(32), nullable=True),
        sa.Column("applied", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("internal_note", sa.Text(), nullable=False),
        sa.Column("automated_detection", sa.Boolean(), nullable=False),
        sa.Column("automated_decision", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(80), nullable=False),
        sa.Column("rule_version", sa.String(32), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("visible_to_user", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.UniqueConstraint("actor_id", "idempotency_key", name="uq_moderation_decisions_actor_key"),
    )
    op.create_index("ix_moderation_decisions_item_id", "moderation_decisions", ["item_id"])
    op.create_index("ix_moderation_decisions_subject_user_id", "moderation_decisions", ["subject_user_id"])

    op.create_table(
        "moderation_appeals",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decision_id", sa.Uuid(), sa.ForeignKey("moderation_decisions.id"), nullable=False),
        sa.Column("item_id", sa.Uuid(), sa.ForeignKey("moderation_review_items.id", ondelete="SET NULL"),
                  nullable=True),
        _user_fk("user_id"),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _user_fk("decided_by"),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("outcome_reason", sa.Text(), nullable=False),
        sa.Column("outcome_explanation", sa.Text(), nullable=False),
        sa.UniqueConstraint("decision_id", name="uq_moderation_appeals_decision_id"),
    )
    op.create_index("ix_moderation_appeals_item_id", "moderation_appeals", ["item_id"])
    op.create_index("ix_moderation_appeals_user_id", "moderation_appeals", ["user_id"])

    op.create_table(
        "moderation_strikes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("user_id", "CASCADE", nullable=False),
        sa.Column("decision_id", sa.Uuid(), sa.ForeignKey("moderation_decisions.id"), nullable=False),
        sa.Column("cleared_at", UTCDateTime(), nullable=True),
        sa.Column("cleared_by_appeal_id", sa.Uuid(), nullable=True),
        sa.UniqueConstraint("decision_id", name="uq_moderation_strikes_decision_id"),
    )
    op.create_index("ix_moderation_strikes_user_id", "moderation_strikes", ["user_id"])

    op.create_table(
        "moderation_restrictions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("user_id", "CASCADE"),
        sa.Column("item_id", sa.Uuid(), sa.ForeignKey("moderation_review_items.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("decision_id", sa.Uuid(), sa.ForeignKey("moderation_decisions.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("automated", sa.Boolean(), nullable=False),
        sa.Column("live_session_id", sa.Uuid(), nullable=True),
        sa.Column("until", UTCDateTime(), nullable=True),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("lifted_at", UTCDateTime(), nullable=True),
        _user_fk("lifted_by"),
        sa.Column("lift_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_moderation_restrictions_user_active", "moderation_restrictions", ["user_id", "lifted_at"])
    op.create_index("ix_moderation_restrictions_item_id", "moderation_restrictions", ["item_id"])
    op.create_index("ix_moderation_restrictions_decision_id", "moderation_restrictions", ["decision_id"])

    op.create_table(
        "moderation_recording_opens",
        sa.Column("id", sa.Uuid(), primary_key=True),
        _user_fk("staff_id", "CASCADE", nullable=False),
        sa.Column("item_id", sa.Uuid(), sa.ForeignKey("moderation_review_items.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("slice_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_moderation_recording_opens_staff_id", "moderation_recording_opens", ["staff_id"])

    op.create_table(
        "moderation_appeal_sessions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _user_fk("user_id", "CASCADE", nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("token_hash", name="uq_moderation_appeal_sessions_token_hash"),
    )
    op.create_index("ix_moderation_appeal_sessions_user_id", "moderation_appeal_sessions", ["user_id"])

    op.create_table(
        "moderation_events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=True),
        sa.Column("decision_id", sa.Uuid(), nullable=True),
        sa.Column("appeal_id", sa.Uuid(), nullable=True),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("subject_user_id", sa.Uuid(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_moderation_events_item", "moderation_events", ["item_id", "seq"])
    op.create_index("ix_moderation_events_actor_id", "moderation_events", ["actor_id"])
    op.create_index("ix_moderation_events_subject_user_id", "moderation_events", ["subject_user_id"])

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute("CREATE TRIGGER moderation_events_append_only BEFORE UPDATE OR DELETE ON moderation_events "
                   "FOR EACH ROW EXECUTE FUNCTION moderation_events_append_only()")
        op.execute("CREATE TRIGGER moderation_events_no_truncate BEFORE TRUNCATE ON moderation_events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION moderation_events_append_only()")
    elif dialect == "sqlite":
        op.execute(_SQLITE_UPDATE_GUARD)
        op.execute(_SQLITE_DELETE_GUARD)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS moderation_events_no_truncate ON moderation_events")
        op.execute("DROP TRIGGER IF EXISTS moderation_events_append_only ON moderation_events")
        op.execute("DROP FUNCTION IF EXISTS moderation_events_append_only()")
    for table in ("moderation_events", "moderation_appeal_sessions", "moderation_recording_opens",
                  "moderation_restrictions", "moderation_strikes", "moderation_appeals", "moderation_decisions",
                  "moderation_review_items"):
        op.drop_table(table)
