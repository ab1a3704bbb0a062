"""ORM models of the access log, its chain head and the per-person references."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Base, IdMixin, utcnow

GENESIS_HASH = "0" * 64


class AccessLogEntry(IdMixin, Base):
    """One staff read (or other access) of a person's data.

    ``actor_ref`` / ``subject_ref`` (random per-person references) are covered by
    ``entry_hash``; ``actor_id`` / ``subject_id`` are the raw links, outside the hash, so they
    can be set to NULL when a person is detached without breaking the chain.
    """

    __tablename__ = "access_log"

    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    actor_ref: Mapped[str | None] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(128))
    subject_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    subject_ref: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64))


class AccessLogHead(Base):
    """The single row naming the newest entry; writers lock it to extend the chain one at a time."""

    __tablename__ = "access_log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AccessLogPerson(Base):
    """The random reference that stands for a person in the hashed part of the log."""

    __tablename__ = "access_log_people"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
