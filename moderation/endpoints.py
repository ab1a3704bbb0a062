"""HTTP routes of the moderation pipeline: failed slices and retries (admin), the policy in force
and policy installs (admin), a slice's analysis and flags (staff, logged with a reason)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status

from moderation import service
from moderation.auth import PipelineAdmin, PolicyAdmin, PolicyReader, TranscriptReader
from moderation.schemas import PolicyOut, SliceAnalysisOut, SliceStateOut
from storage.deps import DbSession, RuntimeDep
from storage.errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable, error_responses
from storage.fields import StoredText
from storage.pagination import Page, pagination

router = APIRouter(prefix="/api/v1/moderation", tags=["moderation"])


@router.get("/slices/failed", response_model=list[SliceStateOut],
            responses=error_responses(Unauthorized, Forbidden))
async def list_failed_slices(
    session: DbSession, _admin: PipelineAdmin, page: Annotated[Page, pagination(50)],
) -> list[SliceStateOut]:
    """Slices the pipeline gave up on, newest first, with the error of each stage."""
    return await service.failed_slices(session, page.limit, page.offset)


@router.post("/slices/{slice_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=SliceStateOut,
             responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict))
async def retry_slice(slice_id: uuid.UUID, session: DbSession, _admin: PipelineAdmin) -> SliceStateOut:
    """Run a failed slice again from its first unfinished stage."""
    return await service.retry_slice(session, slice_id)


@router.get("/slices/{slice_id}/analysis", response_model=SliceAnalysisOut,
            responses=error_responses(Unauthorized, Forbidden, NotFound))
async def read_analysis(
    slice_id: uuid.UUID, session: DbSession, staff: TranscriptReader,
    reason: Annotated[StoredText, Query(min_length=3, max_length=2000,
                                        description="why you need to read this transcript")],
) -> SliceAnalysisOut:
    """A slice's transcript, screen text and flags. The read is written to the access log."""
    return await service.read_analysis(session, staff, slice_id, reason)


@router.get("/policy", response_model=PolicyOut, responses=error_responses(Unauthorized, Forbidden))
async def get_policy(session: DbSession, rt: RuntimeDep, _staff: PolicyReader) -> PolicyOut:
    """The policy the rules stage applies now: the newest installed version, else the shipped file."""
    return await service.current_policy(session, rt.settings)


@router.put("/policy", response_model=PolicyOut,
            responses={201: {"model": PolicyOut, "description": "installed"},
                       **error_responses(Unauthorized, Forbidden, Conflict, Unprocessable)})
async def install_policy(
    response: Response, session: DbSession, rt: RuntimeDep, admin: PolicyAdmin,
    body: dict[str, Any] = Body(..., description="a policy document: {version, description, rules: [...]}"),
) -> PolicyOut:
    """Install a policy version (validated first); it overrides the shipped file from now on."""
    out, created = await service.install_policy(session, rt.settings, admin, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return out
