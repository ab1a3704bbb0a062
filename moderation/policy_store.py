"""Which policy the rules stage applies: the newest active version admins installed, else the file.

The file is ``settings.policy_file`` when set, else the shipped ``moderation/policy/default.json``.
Parsed policies are cached per process (by database row, or by file path and mtime), so the
rules stage pays one small query per slice, not a re-validation.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from classguard.settings import Settings
from moderation import repository as repo
from moderation.rules import Policy

PolicyOrigin = Literal["database", "file"]

_by_row: dict[uuid.UUID, Policy] = {}
_by_file: dict[tuple[str, float], Policy] = {}


def file_policy(settings: Settings) -> Policy:
    """The policy from ``settings.policy_file``, or the shipped default."""
    if settings.policy_file is None:
        return Policy.default()
    path = Path(settings.policy_file)
    key = (str(path.resolve()), path.stat().st_mtime if path.exists() else 0.0)
    cached = _by_file.get(key)
    if cached is None:
        cached = _by_file[key] = Policy.load(path)
    return cached


async def active_policy(session: AsyncSession, settings: Settings) -> tuple[Policy, PolicyOrigin]:
    """The policy in force now and where it comes from."""
    row = await repo.newest_active_policy(session)
    if row is None:
        return file_policy(settings), "file"
    cached = _by_row.get(row.id)
    if cached is None:
        cached = _by_row[row.id] = Policy.from_dict(row.body, source=f"database:{row.version}")
    return cached, "database"
