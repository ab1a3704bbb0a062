"""Request and response bodies of the classroom API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from storage.fields import DisplayTitle, FreeText, StoredText, UtcDateTime

Source = Literal["mic", "camera", "screen"]


class ClassIn(BaseModel):
    """A class to create (teacher). Times are ISO 8601 with a zone; they are stored in UTC."""

    title: DisplayTitle
    description: FreeText = ""
    scheduled_start: UtcDateTime | None = None
    scheduled_end: UtcDateTime | None = None

    @model_validator(mode="after")
    def _times(self) -> ClassIn:
        if self.scheduled_start and self.scheduled_end and self.scheduled_end <= self.scheduled_start:
            raise ValueError("scheduled_end must be after scheduled_start")
        if self.scheduled_end and not self.scheduled_start:
            raise ValueError("scheduled_end needs a scheduled_start")
        return self


class ClassOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    teacher_id: uuid.UUID
    title: str
    description: str
    scheduled_start: datetime | None
    scheduled_end: datetime | None
    created_at: datetime
    live_session_id: uuid.UUID | None = None


class EnrollmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    class_id: uuid.UUID
    student_id: uuid.UUID
    created_at: datetime


class SessionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    class_id: uuid.UUID
    status: Literal["live", "ended"]
    started_at: datetime
    started_by: uuid.UUID | None
    ended_at: datetime | None
    ended_by: uuid.UUID | None
    end_reason: str | None


class JoinOut(BaseModel):
    """Where to connect: open the WebSocket at ``signal_url`` (it carries a single-use join ticket;
    a page on the same origin may instead open ``signal_path`` with its session cookie)."""

    session: SessionOut
    role: Literal["teacher", "student"]
    signal_path: str
    signal_url: str = Field(description="where to open the WebSocket: the hosting relay node's URL, or the "
                                        "same path on this server, with ``?ticket=`` (single use, short-lived)")
    ticket_expires_at: datetime = Field(description="the join ticket in signal_url is refused after this")
    relay_node: str = Field(description="id of the relay node that hosts this live session")
    ice_servers: list[dict[str, Any]]


class ParticipantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    session_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    joined_at: datetime
    left_at: datetime | None
    left_reason: str | None


class ControlIn(BaseModel):
    """A moderation control on a live class; the reason is stored with the recording event."""

    reason: StoredText | None = Field(default=None, max_length=300)


class MuteIn(ControlIn):
    source: Source = "mic"


class ControlOut(BaseModel):
    session_id: uuid.UUID
    user_id: uuid.UUID | None = None
    action: Literal["mute", "unmute", "remove", "readmit", "end"]
    applied_live: bool = Field(description="whether the relay had the participant/room connected")


class RecordingEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    session_id: uuid.UUID
    user_id: uuid.UUID
    source: Source
    enabled: bool
    at: datetime
    by: Literal["participant", "moderator", "system"]
    by_user_id: uuid.UUID | None
    reason: str | None


class ControlEventOut(BaseModel):
    """A control applied to a participant; ``by_user_id`` null means an automated decision."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    session_id: uuid.UUID
    user_id: uuid.UUID
    action: Literal["mute", "unmute", "remove", "readmit", "notice"]
    source: Source | None
    at: datetime
    by_user_id: uuid.UUID | None
    reason: str | None


class SliceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    session_id: uuid.UUID
    class_id: uuid.UUID
    user_id: uuid.UUID
    source: Literal["mic", "screen", "snapshot"]
    media_key: str
    content_type: str
    started_at: datetime
    ended_at: datetime
    duration_s: float
    size_bytes: int
    seq: int
    close_reason: str
    status: Literal["pending", "processing", "done", "failed"]
    error: str | None
    legal_hold: bool
    media_deleted_at: datetime | None
    created_at: datetime


class OfferCheckIn(BaseModel):
    sdp: str = Field(description="an SDP offer as the browser would send it on the publish connection")


class OfferedMediaOut(BaseModel):
    mid: str
    kind: str
    direction: str
    codecs: list[str]


class OfferCheckOut(BaseModel):
    ok: bool = True
    media: list[OfferedMediaOut]
    accepted_codecs: dict[str, str]


class IceConfigOut(BaseModel):
    ice_servers: list[dict[str, Any]]


class ProcessStatsOut(BaseModel):
    """Resource use of the serving process (for ``classguard load-test``)."""

    pid: int
    cpu_seconds: float
    rss_bytes: int
    threads: int
    rooms: int
    participants: int
    relay: dict[str, Any] = Field(default_factory=dict)
