"""The one pagination dependency of every list endpoint: bounded ``limit`` and ``offset``.

Unbounded integers reached the database (``offset=2**63`` overflows SQLite's and PostgreSQL's
64-bit integers: a 500); an offset past ``MAX_OFFSET`` is refused with a 422 instead — a deep
OFFSET scan costs the database as much as reading every row before it, so callers that need
further than this narrow the list with its filters.
"""

# No ``from __future__ import annotations``: FastAPI reads the closure's parameters at run time.

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Query

MAX_OFFSET = 100_000


@dataclass(frozen=True)
class Page:
    """Which slice of a list to answer: ``limit`` rows after skipping ``offset``."""

    limit: int
    offset: int


def pagination(default_limit: int = 50, max_limit: int = 500) -> Any:
    """A ``Depends`` giving a ``Page`` from ``?limit=&offset=`` (use as ``Annotated[Page, pagination()]``)."""

    def page(
        limit: int = Query(default_limit, ge=1, le=max_limit, description="how many rows at most"),
        offset: int = Query(0, ge=0, le=MAX_OFFSET, description="how many rows to skip"),
    ) -> Page:
        return Page(limit, offset)

    return Depends(page)
