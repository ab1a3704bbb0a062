"""The hash of an access-log entry: SHA-256 over a canonical JSON of its hashed fields and the previous hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

FORMAT = 1
HASHED_FIELDS = (
    "id", "seq", "at", "actor_ref", "actor_role", "action", "resource_type", "resource_id",
    "subject_ref", "reason", "prev_hash",
)


def _canon(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # SQLite hands back naive UTC through a raw Core select
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if value is None or isinstance(value, str | int):
        return value
    return str(value)  # UUIDs


def entry_hash(fields: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical form of ``fields`` (which must hold every ``HASHED_FIELDS`` key)."""
    doc = {name: _canon(fields[name]) for name in HASHED_FIELDS}
    doc["v"] = FORMAT
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()
