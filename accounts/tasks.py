"""Background jobs of accounts (they take ids and reload)."""

from __future__ import annotations

from accounts import outbox
from storage.jobs import task


@task(outbox.DELIVER_TASK, queue="default")
async def deliver_message(message_id: str) -> None:
    await outbox.deliver(message_id)
