"""Request and response bodies of the accounts API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from accounts.models import Role
from storage.fields import DisplayName, StoredText


class GuardianConsentIn(BaseModel):
    guardian_name: DisplayName
    guardian_contact: StoredText = Field(min_length=3, max_length=320, description="e-mail or phone of the guardian")
    relationship: StoredText = Field(min_length=1, max_length=40, examples=["mother"])
    consent: bool = Field(description="the guardian agrees to the terms and to recording in classes")


class RegisterIn(BaseModel):
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40, description="international format, e.g. +44 20 7946 0958")
    password: str = Field(max_length=256)
    display_name: DisplayName
    date_of_birth: date
    # Staff roles are granted by operators (`classguard users create`), never self-registered.
    role: Literal["student", "teacher"] = "student"
    region: str | None = None
    guardian: GuardianConsentIn | None = None
    language: Literal["en", "zh"] | None = Field(
        default=None, description="language of messages to you; default: from Accept-Language")


class RegisterAccepted(BaseModel):
    """The same answer whether or not the address already has an account."""

    status: Literal["verification_pending"] = "verification_pending"
    detail: str


class VerifyIn(BaseModel):
    identifier: str = Field(min_length=1, max_length=320, description="the e-mail address or phone number registered")
    code: str = Field(min_length=1, max_length=16, description="the one-time code that was sent to it")


class LoginIn(BaseModel):
    identifier: str = Field(min_length=1, max_length=320, description="e-mail address or phone number")
    password: str = Field(max_length=256)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str | None
    phone: str | None
    display_name: str
    date_of_birth: date
    role: Role
    status: str
    suspended_until: datetime | None
    region: str
    created_at: datetime


class LoginOut(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: UserOut


class UserSummary(BaseModel):
    """A user as staff lists them: no contact data (reading that is logged, see GET /users/{id})."""

    id: uuid.UUID
    display_name: str
    role: Role
    status: str
    created_at: datetime


class AccessEntryOut(BaseModel):
    """One read of the user's personal data by staff, as the user sees it."""

    at: datetime
    actor_role: str
    action: str
    resource_type: str
    reason: str


class CancelIn(BaseModel):
    password: str = Field(max_length=256, description="your current password, to confirm")
