"""The app's routes as its OpenAPI document lists them, matched against a request path.

FastAPI nests included routers, so a request cannot cheaply ask "which routes share my path?";
the OpenAPI document already has every documented route flat, with its path template, methods
and ``openapi_extra``. Built lazily on first use (the document is complete by then).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Operation:
    pattern: re.Pattern[str]
    method: str
    spec: dict[str, Any]


_UUID = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


def path_pattern(template: str, uuid_params: frozenset[str] = frozenset()) -> re.Pattern[str]:
    """``/a/{id}/b`` → a regex matching ``/a/<one segment>/b``; a UUID parameter matches only a UUID
    (``/appeals/session`` is not ``/appeals/{appeal_id}`` as far as the API is concerned)."""
    def segment(m: re.Match[str]) -> str:
        return _UUID if m.group(1) in uuid_params else "[^/]+"

    return re.compile("^" + re.sub(r"\\\{([^/]+?)\\\}", segment, re.escape(template)) + "$")


def _uuid_params(op: dict[str, Any]) -> frozenset[str]:
    return frozenset(p["name"] for p in op.get("parameters", [])
                     if p.get("in") == "path" and p.get("schema", {}).get("format") == "uuid")


class RouteTable:
    """Documented operations of an app, looked up by request path."""

    def __init__(self, openapi: Callable[[], dict[str, Any]]) -> None:
        self._openapi = openapi
        self._ops: list[Operation] | None = None

    @property
    def operations(self) -> list[Operation]:
        if self._ops is None:
            self._ops = [Operation(path_pattern(path, _uuid_params(op)), method.upper(), op)
                         for path, ops in self._openapi().get("paths", {}).items()
                         for method, op in ops.items() if isinstance(op, dict)]
        return self._ops

    def matching(self, path: str) -> list[Operation]:
        return [op for op in self.operations if op.pattern.match(path)]

    def methods(self, path: str) -> set[str]:
        """Every documented method on ``path`` (for a 405's ``Allow``)."""
        return {op.method for op in self.matching(path)}
