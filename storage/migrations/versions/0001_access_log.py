"""storage: append-only, hash-chained access log of staff reads of personal data

Revision ID: storage_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.db import UTCDateTime

revision = "storage_0001"
down_revision = None
branch_labels = ("storage",)
depends_on = None

GENESIS = "0" * 64

# Columns covered by the entry hash; only actor_id / subject_id (the raw links to a person,
# not hashed) may change, and only to NULL (``detach_person``).
_FROZEN = (
    "id", "seq", "at", "actor_ref", "actor_role", "action", "resource_type", "resource_id",
    "subject_ref", "reason", "prev_hash", "entry_hash",
)

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION access_log_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'access_log is append-only: % rejected', TG_OP USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF ({", ".join("NEW." + c for c in _FROZEN)}) IS DISTINCT FROM ({", ".join("OLD." + c for c in _FROZEN)})
       OR (NEW.actor_id IS NOT NULL AND NEW.actor_id IS DISTINCT FROM OLD.actor_id)
       OR (NEW.subject_id IS NOT NULL AND NEW.subject_id IS DISTINCT FROM OLD.subject_id) THEN
        RAISE EXCEPTION 'access_log is append-only: only detaching a person (ids to NULL) is allowed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql
"""

_SQLITE_UPDATE_GUARD = f"""
CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
WHEN {" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _FROZEN)}
   OR (NEW.actor_id IS NOT NULL AND NEW.actor_id IS NOT OLD.actor_id)
   OR (NEW.subject_id IS NOT NULL AND NEW.subject_id IS NOT OLD.subject_id)
BEGIN
    SELECT RAISE(ABORT, 'access_log is append-only: only detaching a person (ids to NULL) is allowed');
END
"""

_SQLITE_DELETE_GUARD = """
CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
BEGIN
    SELECT RAISE(ABORT, 'access_log is append-only: DELETE rejected');
END
"""


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_ref", sa.String(64), nullable=True),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(128), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.Column("subject_ref", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("seq", name="uq_access_log_seq"),
        sa.UniqueConstraint("prev_hash", name="uq_access_log_prev_hash"),
        sa.CheckConstraint("length(trim(reason)) > 0", name="reason_not_blank"),
    )
    op.create_index("ix_access_log_subject_id", "access_log", ["subject_id"])
    op.create_index("ix_access_log_actor_id", "access_log", ["actor_id"])
    op.create_index("ix_access_log_resource", "access_log", ["resource_type", "resource_id"])
    # The chain head: one row, locked by every writer, so two writers never share a prev_hash.
    head = op.create_table(
        "access_log_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    # A random reference per person, hashed into the log instead of the id. Deleting the row
    # (detach_person) removes the only link between the reference and the person.
    op.create_table(
        "access_log_people",
        sa.Column("user_id", sa.Uuid(), primary_key=True),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("ref", name="uq_access_log_people_ref"),
    )

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log "
            "FOR EACH ROW EXECUTE FUNCTION access_log_append_only()"
        )
        op.execute(
            "CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only()"
        )
    elif dialect == "sqlite":
        # Note: a later batch-mode ALTER of access_log recreates the table; re-create these then.
        op.execute(_SQLITE_UPDATE_GUARD)
        op.execute(_SQLITE_DELETE_GUARD)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS access_log_no_truncate ON access_log")
        op.execute("DROP TRIGGER IF EXISTS access_log_append_only ON access_log")
        op.execute("DROP FUNCTION IF EXISTS access_log_append_only()")
    op.drop_table("access_log_people")
    op.drop_table("access_log_head")
    op.drop_table("access_log")
