"""The access log: hash chain, tamper evidence, append-only triggers, detaching a person, concurrency."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from classguard.settings import Settings
from storage.access_log import service
from storage.access_log.models import AccessLogEntry
from storage.db import make_engine, make_sessionmaker
from storage.errors import Unprocessable


class Log:
    """A database with the access-log tables, and helpers to write and tamper with it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sm: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        self.dialect = engine.dialect.name

    async def record(self, **overrides: Any) -> AccessLogEntry:
        async with self.sm() as s, s.begin():
            return await service.record_access(s, **access(**overrides))

    async def verify(self) -> Any:
        async with self.sm() as s:
            return await service.verify_chain(s, batch_size=4)

    async def raw(self, sql: str, **params: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.text(sql), params)

    async def without_guards(self, sql: str, **params: Any) -> None:
        """What someone with direct database access could do: switch the triggers off and write."""
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(sa.text("ALTER TABLE access_log DISABLE TRIGGER USER"))
                await conn.execute(sa.text(sql), params)
                await conn.execute(sa.text("ALTER TABLE access_log ENABLE TRIGGER USER"))
            else:
                await conn.execute(sa.text("DROP TRIGGER access_log_no_update"))
                await conn.execute(sa.text("DROP TRIGGER access_log_no_delete"))
                await conn.execute(sa.text(sql), params)


def access(**overrides: Any) -> dict[str, Any]:
    """An access-log entry's fields with defaults: a moderator reading a recording."""
    values: dict[str, Any] = {
        "actor_id": uuid.uuid4(), "actor_role": "moderator", "action": "read", "resource_type": "recording",
        "resource_id": str(uuid.uuid4()), "subject_id": uuid.uuid4(), "reason": "reviewing flag #12",
    }
    values.update(overrides)
    return values


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def log(request: pytest.FixtureRequest) -> AsyncIterator[Log]:
    settings: Settings = request.getfixturevalue("settings" if request.param == "sqlite" else "pg_settings")
    engine = make_engine(settings.database_url)
    yield Log(engine)
    await engine.dispose()


async def test_entries_chain_and_verify(log: Log) -> None:
    assert (await log.verify()).ok  # an empty log verifies
    entries = [await log.record(reason=f"case {i}") for i in range(10)]
    assert [e.seq for e in entries] == list(range(1, 11))
    assert entries[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(entries))
    result = await log.verify()
    assert result.ok and result.checked == 10 and result.head_hash == entries[-1].entry_hash
    # Raw ids are stored for lookups; only random references are hashed.
    assert entries[0].actor_ref and entries[0].actor_ref != str(entries[0].actor_id)


async def test_same_person_same_reference(log: Log) -> None:
    person = uuid.uuid4()
    a = await log.record(subject_id=person)
    b = await log.record(actor_id=person, actor_role="admin", subject_id=uuid.uuid4())
    assert a.subject_ref == b.actor_ref
    async with log.sm() as s:
        about = await service.entries_about(s, person)
    assert [e.id for e in about] == [a.id]


@pytest.mark.parametrize("reason", ["", "   ", None])
async def test_reason_is_required(log: Log, reason: Any) -> None:
    with pytest.raises(Unprocessable, match="reason") as err:
        await log.record(reason=reason)
    assert err.value.status == 422
    assert (await log.verify()).checked == 0


async def test_oversized_fields_rejected(log: Log) -> None:
    with pytest.raises(Unprocessable, match="resource_type"):
        await log.record(resource_type="x" * 65)


async def test_system_actor_without_id(log: Log) -> None:
    e = await log.record(actor_id=None, actor_role="system", reason="automated moderation pipeline")
    assert e.actor_ref is None
    assert (await log.verify()).ok


async def test_edited_entry_is_detected(log: Log) -> None:
    for i in range(6):
        await log.record(reason=f"case {i}")
    with pytest.raises(DBAPIError, match="append-only"):
        await log.raw("UPDATE access_log SET reason = 'nothing to see' WHERE seq = 3")
    await log.without_guards("UPDATE access_log SET reason = 'nothing to see' WHERE seq = 3")
    result = await log.verify()
    assert not result.ok and result.first_bad_seq == 3 and "edited" in (result.reason or "")
    assert result.checked == 2


async def test_edited_timestamp_is_detected(log: Log) -> None:
    for _ in range(3):
        await log.record()
    await log.without_guards("UPDATE access_log SET resource_type = 'other' WHERE seq = 2")
    assert (await log.verify()).first_bad_seq == 2


async def test_deleted_entry_is_detected(log: Log) -> None:
    for i in range(6):
        await log.record(reason=f"case {i}")
    with pytest.raises(DBAPIError, match="append-only"):
        await log.raw("DELETE FROM access_log WHERE seq = 4")
    await log.without_guards("DELETE FROM access_log WHERE seq = 4")
    result = await log.verify()
    assert not result.ok and result.first_bad_seq == 4 and "missing" in (result.reason or "")


async def test_deleted_tail_is_detected(log: Log) -> None:
    for _ in range(5):
        await log.record()
    await log.without_guards("DELETE FROM access_log WHERE seq = 5")
    result = await log.verify()
    assert not result.ok and result.first_bad_seq == 5


async def test_rehashed_entry_breaks_the_link(log: Log) -> None:
    """Editing an entry *and* recomputing its hash still breaks the next entry's link."""
    from storage.access_log.chain import HASHED_FIELDS, entry_hash

    for _ in range(4):
        await log.record()
    async with log.sm() as s:
        row = (await s.execute(sa.select(AccessLogEntry).where(AccessLogEntry.seq == 2))).scalar_one()
        fields = {n: getattr(row, n) for n in HASHED_FIELDS} | {"reason": "forged"}
    await log.without_guards("UPDATE access_log SET reason = 'forged', entry_hash = :h WHERE seq = 2",
                             h=entry_hash(fields))
    result = await log.verify()
    assert not result.ok and result.first_bad_seq == 3 and "chain broken" in (result.reason or "")


async def test_detach_person_keeps_chain_valid(log: Log) -> None:
    person, staff = uuid.uuid4(), uuid.uuid4()
    await log.record(subject_id=person, actor_id=staff)
    await log.record()
    await log.record(actor_id=person, actor_role="teacher", subject_id=uuid.uuid4())
    async with log.sm() as s, s.begin():
        touched = await service.detach_person(s, person)
    assert touched == 2
    async with log.sm() as s:
        assert await service.entries_about(s, person) == []
        rows = (await s.execute(sa.select(AccessLogEntry).order_by(AccessLogEntry.seq))).scalars().all()
        refs = (await s.execute(sa.text("SELECT count(*) FROM access_log_people"))).scalar_one()
    assert rows[0].subject_id is None and rows[0].actor_id == staff
    assert rows[2].actor_id is None
    assert refs == 4  # the person's reference is gone; staff and the two other subjects remain
    result = await log.verify()
    assert result.ok and result.checked == 3
    # After detaching, the person gets a fresh reference: old entries do not link to new ones.
    again = await log.record(subject_id=person)
    assert again.subject_ref != rows[0].subject_ref


async def test_triggers_allow_only_detaching(log: Log) -> None:
    person = uuid.uuid4()
    await log.record(subject_id=person)
    with pytest.raises(DBAPIError, match="append-only"):
        await log.raw("UPDATE access_log SET subject_id = :other WHERE seq = 1", other=uuid.uuid4()
                      if log.dialect == "postgresql" else uuid.uuid4().hex)
    await log.raw("UPDATE access_log SET subject_id = NULL WHERE seq = 1")
    assert (await log.verify()).ok


async def test_concurrent_writers_never_fork_the_chain(log: Log) -> None:
    await asyncio.gather(*(log.record(reason=f"parallel {i}") for i in range(20)))
    result = await log.verify()
    assert result.ok and result.checked == 20
    async with log.sm() as s:
        seqs = (await s.execute(sa.select(AccessLogEntry.seq).order_by(AccessLogEntry.seq))).scalars().all()
    assert list(seqs) == list(range(1, 21))


async def test_rolled_back_read_leaves_no_entry(log: Log) -> None:
    """The entry is part of the reader's transaction: if the read fails, no entry and no gap."""
    await log.record()
    with pytest.raises(RuntimeError):
        async with log.sm() as s, s.begin():
            await service.record_access(s, **access())
            raise RuntimeError("the read failed")
    await log.record()
    result = await log.verify()
    assert result.ok and result.checked == 2
