"""Pydantic shapes of the access log (for staff views, data exports and the verify command)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AccessLogEntryOut(BaseModel):
    """One entry as shown to an auditor or in a person's data export."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    seq: int
    at: datetime
    actor_id: uuid.UUID | None
    actor_role: str
    action: str
    resource_type: str
    resource_id: str
    subject_id: uuid.UUID | None
    reason: str


class VerifyResult(BaseModel):
    """Outcome of walking the hash chain. ``first_bad_seq`` names the first entry that fails."""

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_hash: str | None = None  # worth copying somewhere else: it anchors the whole log
