"""ORM models of accounts: users, login sessions, guardian consent, the login throttle,
pending registrations and the outbox of messages to users."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String
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
    language: Mapped[str] = mapped_column(String(8), default="en", server_default="en")  # "en" or "zh"


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


class ThrottleCounter(Base):
    """One counter of the throttle: failures (or sends) for one key in its current window.

    Keys name who is attacked or who attacks, never in clear: ``acct:<user id or blind index>``,
    ``addr:<client address>``, ``pair:<account>|<address>``, ``reg:…``. Attempts are reserved by
    one conditional UPDATE before the expensive check, so concurrent requests cannot overshoot.
    """

    __tablename__ = "throttle_counters"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime]
    last_at: Mapped[datetime]
    blocked_until: Mapped[datetime | None] = mapped_column(default=None)


class PendingRegistration(IdMixin, TimestampMixin, Base):
    """A self-registration waiting for its one-time code; the account exists only once verified.

    The form (with the argon2 hash of the password) is stored encrypted; the contact only as a
    blind index; the code only as a keyed hash. ``for_existing`` rows (the address already has an
    account) carry a code nobody was sent, so they answer exactly like the others and never verify.
    """

    __tablename__ = "pending_registrations"
    __table_args__ = (Index("ix_pending_registrations_contact", "contact_key", "created_at"),)

    contact_key: Mapped[str] = mapped_column(String(80))
    payload_ct: Mapped[bytes] = mapped_column(LargeBinary)
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    for_existing: Mapped[bool] = mapped_column(Boolean, default=False)


class OutboxMessage(IdMixin, TimestampMixin, Base):
    """A message to a person (e-mail or SMS), written in the transaction that caused it.

    A job delivers it after commit (SMTP, or the SMS provider); delivered messages lose their
    body. Without SMTP (embedded mode) or with the default SMS provider the message stays here,
    ``held``, for an operator (`classguard outbox list`). Recipient and body are encrypted.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_status", "status", "created_at"),)

    channel: Mapped[str] = mapped_column(String(8))  # "email" | "sms"
    recipient_ct: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(String(200))
    body_ct: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending | held | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(String(300), default=None)


# Phone ciphertexts are bound to their row, so a token copied to another user fails to decrypt.
PHONE_CT_CONTEXT = "users.phone:{pk}"
register_encrypted_column("users", "id", "phone_ct", PHONE_CT_CONTEXT)
PENDING_CT_CONTEXT = "pending_registrations.payload:{pk}"
register_encrypted_column("pending_registrations", "id", "payload_ct", PENDING_CT_CONTEXT)
OUTBOX_TO_CONTEXT = "outbox_messages.recipient:{pk}"
OUTBOX_BODY_CONTEXT = "outbox_messages.body:{pk}"
register_encrypted_column("outbox_messages", "id", "recipient_ct", OUTBOX_TO_CONTEXT)
register_encrypted_column("outbox_messages", "id", "body_ct", OUTBOX_BODY_CONTEXT)
