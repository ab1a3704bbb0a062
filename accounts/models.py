"""ORM models of accounts: users, login sessions, guardian consent, login attempts."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from storage.crypto import register_encrypted_column
from storage.db import Base, IdMixin, TimestampMixin, utcnow


class Role(enum.StrEnum):
    student = "student"
    teacher = "teacher"
    moderator = "moderator"
    admin = "admin"


class UserStatus(enum.StrEnum):
    active = "active"
    suspended = "suspended"
    banned = "banned"
    cancelled = "cancelled"


class User(IdMixin, TimestampMixin, Base):
    """A person with one role. The phone number is stored only encrypted plus a blind index."""

    __tablename__ = "users"

    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_bidx: Mapped[str | None] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(120))
    date_of_birth: Mapped[date] = mapped_column(Date)
    role: Mapped[str] = mapped_column(String(16), default=Role.student.value)
    status: Mapped[str] = mapped_column(String(16), default=UserStatus.active.value)
    suspended_until: Mapped[datetime | None] = mapped_column(default=None)
    region: Mapped[str] = mapped_column(String(16), default="eu")
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)


class GuardianConsent(IdMixin, TimestampMixin, Base):
    """A guardian's consent for an under-18 student, recorded at registration."""

    __tablename__ = "guardian_consents"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    guardian_name: Mapped[str] = mapped_column(String(120))
    guardian_contact: Mapped[str] = mapped_column(String(320))
    relationship: Mapped[str] = mapped_column(String(40))
    consented_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthSession(IdMixin, TimestampMixin, Base):
    """An opaque login token; only its SHA-256 is stored, so a database leak yields no tokens."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


class LoginAttempt(IdMixin, Base):
    """A failed login, keyed by a blind index of the identifier (never the identifier itself)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_key_at", "key", "at"),)

    key: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(default=utcnow)


# Phone ciphertexts are bound to their row, so a token copied to another user fails to decrypt.
PHONE_CT_CONTEXT = "users.phone:{pk}"
register_encrypted_column("users", "id", "phone_ct", PHONE_CT_CONTEXT)
