"""Schemathesis fuzzes the whole documented HTTP API of a real ``classguard serve``, as an admin and
as a student: no 5xx, every status code documented, every response body and content type as the
OpenAPI document says, unparsable or schema-invalid requests refused with a documented 4xx.

Bounded for CI (2 cores): few examples per operation, no shrinking, a per-request timeout.

Not fuzzed, and why:
- the signaling WebSocket (``/sessions/{id}/signal``): not in the OpenAPI document (it is not
  HTTP); its own tests drive it;
- ``POST /auth/logout`` and ``POST /me/cancel``: they would revoke the fuzzer's own credential or
  delete its account mid-run; their tests are in ``tests/accounts``;
- the pages (``/class``, ``/moderation``, static files): HTML, not in the API document.

Checks switched off, and why:
- ``positive_data_acceptance``: some rules cannot be written as JSON Schema (an e-mail *or* a phone,
  a suspension's duration only with ``suspend``, SDP grammar, a policy document's semantics), so a
  schema-valid body may rightly be a 400/422;
- ``unsupported_method`` on ``/appeals/session`` only: ``GET /appeals/session`` is
  ``GET /appeals/{appeal_id}`` with an id that is not a UUID, a documented 422, not a 405.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from classguard.app import create_app
from classguard.settings import Settings
from tests.classroom.live_server import LiveServer, ServerUser

EXAMPLES = 5  # per operation and role in the fuzzing phase (plus the schema's examples and the coverage cases)
# The whole run's budget: operations still waiting when it is used up are skipped, and say so.
BUDGET_SECONDS = float(os.environ.get("CLASSGUARD_FUZZ_BUDGET_SECONDS", "300"))
_started: list[float] = []


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path_factory.mktemp("fuzz") / "var").start()
    _started.append(time.monotonic())
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def fuzz_users(fuzz_server: LiveServer) -> dict[str, ServerUser]:
    """An admin and a student enrolled in a real class, so lists answer with real rows to check."""
    admin = fuzz_server.create_staff("fuzz-admin@example.com", role="admin")
    teacher = fuzz_server.register("fuzz-teacher@example.com", role="teacher")
    student = fuzz_server.register("fuzz-student@example.com")
    fuzz_server.make_class(teacher, [student], title="Fuzzed fractions")
    return {"admin": admin, "student": student}


def _config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "request-timeout": 30,
        "generation": {"max-examples": EXAMPLES, "no-shrink": True, "database": "none",
                       # auth is ours to send; unknown query parameters are ignored, as HTTP APIs do
                       "with-security-parameters": False, "allow-extra-parameters": True},
        "phases": {"stateful": {"enabled": False}},
        "checks": {"positive_data_acceptance": {"enabled": False}},
        "operations": [
            {"include-path": "/api/v1/appeals/session", "checks": {"unsupported_method": {"enabled": False}}},
        ],
    })


def _documented_api() -> Any:
    """The OpenAPI document of the app as ``classguard serve`` builds it (no server needed for it)."""
    doc = create_app(Settings(data_dir=Path("var-unused"))).openapi()
    return schemathesis.openapi.from_dict(doc, config=_config()).exclude(
        path=["/api/v1/auth/logout", "/api/v1/me/cancel"])


schema = _documented_api()
def _within_budget() -> None:
    if time.monotonic() - _started[0] > BUDGET_SECONDS:
        pytest.skip(f"the fuzzing budget of {BUDGET_SECONDS:.0f} s is used up")


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.slow
@schema.parametrize()
@_SETTINGS
def test_api_as_admin(case: Any, fuzz_server: LiveServer, fuzz_users: dict[str, ServerUser]) -> None:
    _within_budget()
    case.call_and_validate(base_url=fuzz_server.base, headers=fuzz_users["admin"].headers)


@pytest.mark.slow
@schema.parametrize()
@_SETTINGS
def test_api_as_student(case: Any, fuzz_server: LiveServer, fuzz_users: dict[str, ServerUser]) -> None:
    _within_budget()
    case.call_and_validate(base_url=fuzz_server.base, headers=fuzz_users["student"].headers)
