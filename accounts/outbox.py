"""The outbox: messages to people are written in the transaction that causes them and
delivered by a job after commit, so a rolled-back request sends nothing and a slow SMTP server
never holds up (or times) a request."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from accounts import delivery
from accounts import outbox_repository as repo
from accounts.models import OUTBOX_BODY_CONTEXT, OUTBOX_TO_CONTEXT, OutboxMessage
from accounts.notices import Notice
from storage import jobs
from storage.db import unit_of_work, utcnow
from storage.runtime import get_runtime

log = logging.getLogger("classguard.outbox")
DELIVER_TASK = "accounts.deliver_message"


@dataclass
class ReadMessage:
    id: uuid.UUID
    created_at: datetime
    channel: str
    to: str
    subject: str
    body: str | None
    status: str


async def queue(session: AsyncSession, channel: str, to: str, notice: Notice) -> uuid.UUID:
    """Write a message for ``to`` (an e-mail address or an E.164 number) and send it after commit."""
    cipher = get_runtime().cipher
    msg = OutboxMessage(id=uuid.uuid4(), channel=channel, subject=notice.subject, status="pending", attempts=0)
    msg.recipient_ct = cipher.encrypt(to.encode(), OUTBOX_TO_CONTEXT.format(pk=msg.id))
    msg.body_ct = cipher.encrypt(notice.body.encode(), OUTBOX_BODY_CONTEXT.format(pk=msg.id))
    await repo.add(session, msg)
    jobs.enqueue(session, DELIVER_TASK, message_id=str(msg.id))
    return msg.id


def _read(msg: OutboxMessage) -> ReadMessage:
    cipher = get_runtime().cipher
    to = cipher.decrypt(msg.recipient_ct, OUTBOX_TO_CONTEXT.format(pk=msg.id)).decode()
    body = cipher.decrypt(msg.body_ct, OUTBOX_BODY_CONTEXT.format(pk=msg.id)).decode() if msg.body_ct else None
    return ReadMessage(msg.id, msg.created_at, msg.channel, to, msg.subject, body, msg.status)


async def read_messages(
    session: AsyncSession, *, channel: str | None = None, status: str | None = None, to: str | None = None,
    limit: int = 20,
) -> list[ReadMessage]:
    """Newest messages, decrypted (for the operator's `classguard outbox list`)."""
    rows = await repo.newest(session, channel, status, limit if to is None else max(limit, 1000))
    out = [_read(m) for m in rows]
    if to is not None:
        out = [m for m in out if m.to.lower() == to.strip().lower()]
    return out[:limit]


async def deliver(message_id: str) -> None:
    """Send one message (idempotent: a sent or held message is left alone).

    No connection is held while SMTP or the SMS gateway talks; a delivered message loses its
    body (the code in it must not outlive its use in the database).
    """
    rt = get_runtime()
    settings = rt.settings
    async with unit_of_work(rt.sessionmaker) as session:
        msg = await repo.get(session, uuid.UUID(message_id))
        if msg is None or msg.status in ("sent", "held"):
            return
        read = _read(msg)
    sms = delivery.sms_provider(settings) if read.channel == "sms" else None
    held = (read.channel == "email" and not delivery.mail_configured(settings)) or (
        read.channel == "sms" and sms is None)
    error: str | None = None
    if not held:
        try:
            if read.channel == "email":
                await asyncio.to_thread(delivery.send_mail, settings, read.to, read.subject, read.body or "")
            elif sms is not None:
                await sms.send(read.to, read.body or "")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
    async with unit_of_work(rt.sessionmaker) as session:
        msg = await repo.get(session, uuid.UUID(message_id))
        if msg is None:
            return
        msg.attempts += 1
        if held:
            msg.status = "held"
        elif error is None:
            msg.status, msg.sent_at, msg.body_ct, msg.error = "sent", utcnow(), None, None
        else:
            msg.status, msg.error = ("failed" if msg.attempts >= settings.task_max_attempts else "pending"), error
    if error is not None:
        log.warning("message %s not delivered: %s", message_id, error)
        raise RuntimeError(f"delivery of {message_id} failed: {error}")  # the dispatcher retries
