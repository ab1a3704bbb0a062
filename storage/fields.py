"""Validated field types that every domain's request schemas share.

- ``DisplayName`` / ``DisplayTitle``: text shown to other people (display names, class titles).
  Trimmed; blank after trimming is refused; control characters (NUL …), lone surrogates and the
  bidi embedding/override/isolate controls (U+202A–202E, U+2066–2069, which can make a name read
  as something else) are refused; other invisible format characters (zero-width space / joiners,
  word joiner, BOM, bidi marks, soft hyphen …) are stripped, so two names that look the same are
  the same string. NFC-normalised.
- ``StoredText`` / ``FreeText``: any other text that is stored (reasons, explanations, notes,
  descriptions): may hold line breaks, but no NUL, other control characters or lone surrogates
  (PostgreSQL cannot store NUL; a lone surrogate cannot be encoded). ``StoredText`` takes its
  length bounds from the field or query parameter; ``FreeText`` is up to 5000 characters.
- ``UtcDateTime``: an ISO 8601 time *with* a zone, converted to UTC; one whose UTC value falls
  outside years 1–9999 (e.g. ``9999-12-31T23:59:59-23:59``) is a 422, not an overflow later.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

_BIDI_CONTROLS = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
_LINE_BREAKS = frozenset("\n\r\t")


def _refuse_controls(value: str, allowed: frozenset[str] = frozenset()) -> None:
    for ch in value:
        cat = unicodedata.category(ch)
        if cat == "Cc" and ch not in allowed:
            raise ValueError(f"must not contain control characters (found U+{ord(ch):04X})")
        if cat == "Cs":
            raise ValueError("must not contain unpaired surrogates")


def clean_display_text(value: str) -> str:
    """The display form of a name or title (see the module docstring), or ``ValueError``."""
    _refuse_controls(value)
    if any(ord(ch) in _BIDI_CONTROLS for ch in value):
        raise ValueError("must not contain bidirectional override or isolate characters")
    value = "".join(ch for ch in value if unicodedata.category(ch) != "Cf")
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def clean_free_text(value: str) -> str:
    _refuse_controls(value, _LINE_BREAKS)
    return value


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC; ``ValueError`` without a zone or outside the representable range."""
    if value.tzinfo is None:
        raise ValueError("needs a time zone (e.g. 2030-01-01T09:00:00Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the representable range (years 1 to 9999 in UTC)") from None


DisplayName = Annotated[str, Field(min_length=1, max_length=120), AfterValidator(clean_display_text)]
DisplayTitle = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(clean_display_text)]
StoredText = Annotated[str, AfterValidator(clean_free_text)]
FreeText = Annotated[str, Field(max_length=5000), AfterValidator(clean_free_text)]
UtcDateTime = Annotated[datetime, AfterValidator(to_utc)]
