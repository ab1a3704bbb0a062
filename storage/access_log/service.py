"""Rules of the access log: every entry has a reason, extends the hash chain, and never changes.

Call ``record_access`` in the same session (transaction) as the read it records, before the
data leaves the service: if the log cannot be written, the read fails too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.access_log import repository
from storage.access_log.chain import HASHED_FIELDS, entry_hash
from storage.access_log.models import GENESIS_HASH, AccessLogEntry
from storage.access_log.schemas import VerifyResult
from storage.db import utcnow
from storage.errors import Unprocessable

_LIMITS = {"actor_role": 32, "action": 32, "resource_type": 64, "resource_id": 128, "reason": 2000}


def _required(name: str, value: Any) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise Unprocessable(f"{name} is required for an access-log entry")
    if len(text) > _LIMITS[name]:
        raise Unprocessable(f"{name} is longer than {_LIMITS[name]} characters")
    return text


async def record_access(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None,
    actor_role: str,
    action: str,
    resource_type: str,
    resource_id: str | uuid.UUID,
    subject_id: uuid.UUID | None,
    reason: str,
) -> AccessLogEntry:
    """Append one entry (who, what, when, why, about whom) to the chain and flush it.

    ``reason`` must be a non-empty text (``Unprocessable`` otherwise). ``actor_id`` is None
    only for the platform itself (``actor_role="system"``).
    """
    reason_text = _required("reason", reason)
    fields: dict[str, Any] = {
        "actor_role": _required("actor_role", actor_role),
        "action": _required("action", action),
        "resource_type": _required("resource_type", resource_type),
        "resource_id": _required("resource_id", resource_id),
        "reason": reason_text,
    }
    # Head lock first: person references are then only ever created by the one transaction
    # holding it, so two writers can never wait on each other's new reference (deadlock).
    seq, prev = await repository.advance_head(session)
    actor_ref = await repository.person_ref(session, actor_id) if actor_id else None
    subject_ref = await repository.person_ref(session, subject_id) if subject_id else None
    entry = AccessLogEntry(
        id=uuid.uuid4(), seq=seq, at=utcnow(), actor_id=actor_id, actor_ref=actor_ref,
        subject_id=subject_id, subject_ref=subject_ref, prev_hash=prev, **fields,
    )
    entry.entry_hash = entry_hash({name: getattr(entry, name) for name in HASHED_FIELDS})
    await repository.add_entry(session, entry)
    await repository.set_head_hash(session, seq, entry.entry_hash)
    return entry


async def record_reads(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID,
    actor_role: str,
    resource_type: str,
    resource_id: str | uuid.UUID,
    subject_ids: Iterable[uuid.UUID | None],
    reason: str,
) -> int:
    """One ``read`` entry per distinct person shown by a staff read of a list (participants,
    accounts, a case history), so each of them finds it in their own access log. Returns the
    number of entries written (none when the list named nobody)."""
    seen: set[uuid.UUID] = set()
    for subject in subject_ids:
        if subject is None or subject in seen:
            continue
        seen.add(subject)
        await record_access(session, actor_id=actor_id, actor_role=actor_role, action="read",
                            resource_type=resource_type, resource_id=resource_id, subject_id=subject, reason=reason)
    return len(seen)


async def verify_chain(session: AsyncSession, batch_size: int = 1000) -> VerifyResult:
    """Walk the chain from the first entry to the head and recompute every hash.

    Fails on an entry whose content does not match its hash (edited), a broken link or a
    missing sequence number (deleted or inserted), or a head that names entries that are
    not there (tail deleted). Entries appended while verifying are left for the next run.
    """
    head_seq, head_hash = await repository.get_head(session)
    expected_seq, prev = 1, GENESIS_HASH
    checked = 0
    while expected_seq <= head_seq:
        rows = await repository.entries_page(session, expected_seq - 1, head_seq, batch_size)
        if not rows:
            break
        problem = await asyncio.to_thread(_check_rows, rows, expected_seq, prev)
        if problem is not None:
            bad_seq, n_ok, why = problem
            return VerifyResult(ok=False, checked=checked + n_ok, first_bad_seq=bad_seq, reason=why)
        checked += len(rows)
        expected_seq = int(rows[-1].seq) + 1
        prev = str(rows[-1].entry_hash)
    if checked != head_seq:
        return VerifyResult(ok=False, checked=checked, first_bad_seq=checked + 1,
                            reason=f"the chain head names {head_seq} entries but only {checked} are there")
    if prev != head_hash:
        return VerifyResult(ok=False, checked=checked, first_bad_seq=head_seq or None,
                            reason="the last entry's hash differs from the chain head")
    return VerifyResult(ok=True, checked=checked, head_hash=head_hash)


def _check_rows(rows: Sequence[Any], expected_seq: int, prev: str) -> tuple[int, int, str] | None:
    """(bad seq, entries fine before it, why) for the first bad row, or None."""
    for n, row in enumerate(rows):
        seq = int(row.seq)
        if seq != expected_seq:
            return expected_seq, n, f"entry {expected_seq} is missing (next entry is {seq})"
        if entry_hash(row._mapping) != row.entry_hash:
            return seq, n, f"entry {seq} does not match its hash (edited)"
        if row.prev_hash != prev:
            return seq, n, f"entry {seq} does not link to entry {seq - 1} (chain broken)"
        prev = row.entry_hash
        expected_seq += 1
    return None


async def detach_person(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Remove the link between the log and a person (cancellation): the raw ids become NULL and
    the person's reference is forgotten. Entries stay and the chain still verifies.

    Returns how many id fields were cleared.
    """
    return await repository.detach_person_ids(session, user_id)


async def entries_about(session: AsyncSession, subject_id: uuid.UUID, limit: int = 1000) -> Sequence[AccessLogEntry]:
    """Newest first: who read this person's data (for the person's own data export)."""
    return await repository.entries_about(session, subject_id, limit)


async def entries_for_resource(
    session: AsyncSession, resource_type: str, resource_id: str | uuid.UUID, limit: int = 1000
) -> Sequence[AccessLogEntry]:
    """Newest first: every access to one resource."""
    return await repository.entries_for_resource(session, resource_type, str(resource_id), limit)
