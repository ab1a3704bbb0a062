"""HTTP routes of review: the staff queue under ``/api/v1/moderation``, the user's decisions
under ``/api/v1/me/decisions``, appeals under ``/api/v1/appeals``, and ``/metrics``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from accounts.models import User
from accounts.schemas import LoginIn
from classroom import repository as classroom_repo
from moderation.review import appeals, decisions, explanations, metrics, recordings, restricted_access, service, views
from moderation.review import repository as repo
from moderation.review.auth import DecisionReader, StaffUser, is_staff
from moderation.review.models import Appeal, DisplayStatus
from moderation.review.repository import QueueFilter
from moderation.review.schemas import (
    AppealDecisionIn,
    AppealDecisionResult,
    AppealIn,
    AppealOut,
    AppealSessionOut,
    ClaimNextIn,
    ClaimOut,
    DecisionIn,
    DecisionResult,
    EventOut,
    ItemDetail,
    LeaseOut,
    QueueItemOut,
    QueuePage,
    RecordingOpenIn,
    RecordingOpenOut,
    StatementOfReasons,
)
from storage.db import utcnow
from storage.deps import ClientIP, DbSession
from storage.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    error_responses,
)
from storage.fields import StoredText
from storage.pagination import Page, pagination

api = APIRouter(prefix="/api/v1", tags=["moderation review"])
STAFF_ERRORS = (Unauthorized, Forbidden)
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=100,
                                              description="repeat a request safely: same key, same result")]


@api.get("/moderation/queue", response_model=QueuePage, responses=error_responses(*STAFF_ERRORS))
async def queue(
    _: StaffUser, session: DbSession, page: Annotated[Page, pagination(50, max_limit=200)],
    status_: Annotated[DisplayStatus | None, Query(alias="status", description="default: every open item")] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    rule_id: Annotated[str | None, Query(max_length=80)] = None,
    class_id: uuid.UUID | None = None,
    participant_id: uuid.UUID | None = None,
) -> QueuePage:
    """Cases (a participant's flags of one category in one live session), most restricted
    first, then most severe, then oldest."""
    f = QueueFilter(category, rule_id, class_id, participant_id, status_)
    return await service.list_queue(session, f, page.limit, page.offset)


@api.post("/moderation/queue/claim-next", response_model=ClaimOut, responses=error_responses(*STAFF_ERRORS))
async def claim_next(staff: StaffUser, session: DbSession, body: ClaimNextIn | None = None) -> ClaimOut:
    """Take a lease on the first free item you may work (optionally within filters)."""
    body = body or ClaimNextIn()
    item = await service.claim_next(session, staff, QueueFilter(body.category, body.rule_id, body.class_id,
                                                                body.participant_id))
    return ClaimOut(item=await service.item_detail(session, staff, item) if item else None)


@api.get("/moderation/items/{item_id}", response_model=ItemDetail,
         responses=error_responses(*STAFF_ERRORS, NotFound))
async def item(
    item_id: uuid.UUID, staff: StaffUser, session: DbSession,
    reason: Annotated[StoredText | None, Query(min_length=3, max_length=2000,
                                        description="why (access log); default: review of this item")] = None,
    slice_id: Annotated[uuid.UUID | None, Query(description="which of the case's slices to show in full")] = None,
) -> ItemDetail:
    """One case: its slices and every hit on one timeline (with live nudges, restrictions and
    decisions), one slice's transcript with the hits and screen evidence, class and teacher, the
    participant's earlier cases and decisions. The read is written to the access log."""
    item = await service.get_item_or_404(session, item_id)
    return await service.item_detail(session, staff, item, reason, slice_id)


@api.post("/moderation/items/{item_id}/claim", response_model=ItemDetail,
          responses=error_responses(*STAFF_ERRORS, NotFound, Conflict))
async def claim(item_id: uuid.UUID, staff: StaffUser, session: DbSession) -> ItemDetail:
    """Take the item's lease (settings.lease_seconds); 409 while another moderator holds it."""
    return await service.item_detail(session, staff, await service.claim(session, staff, item_id))


@api.post("/moderation/items/{item_id}/renew", response_model=LeaseOut,
          responses=error_responses(*STAFF_ERRORS, NotFound, Conflict))
async def renew(item_id: uuid.UUID, staff: StaffUser, session: DbSession) -> LeaseOut:
    """Extend your live lease."""
    return await service.renew(session, staff, item_id)


@api.post("/moderation/items/{item_id}/release", response_model=QueueItemOut,
          responses=error_responses(*STAFF_ERRORS, NotFound))
async def release(item_id: uuid.UUID, staff: StaffUser, session: DbSession) -> QueueItemOut:
    """Give the item back to the queue."""
    item = await service.release(session, staff, item_id)
    users = await _users(session, item.user_id)
    return views.queue_item(item, _now(), users)


@api.post("/moderation/items/{item_id}/decision", response_model=DecisionResult,
          responses=error_responses(*STAFF_ERRORS, NotFound, Conflict, Unprocessable))
async def decide(
    item_id: uuid.UUID, body: DecisionIn, staff: StaffUser, session: DbSession, idempotency_key: IdempotencyKey = None,
    next_: Annotated[bool, Query(alias="next", description="then claim the next item (decide and next)")] = False,
) -> DecisionResult:
    """Dismiss, confirm with an action, or escalate. Needs your live lease; 409 otherwise.
    Repeating the same request returns the same result (``replayed``) and changes nothing."""
    done = await decisions.decide(session, staff, item_id, body, idempotency_key)
    appeal = await _appeal_of(session, done.decision.id)
    users = await _users(session, done.item.user_id)
    result = DecisionResult(decision=views.decision_staff(done.decision, appeal),
                            item=views.queue_item(done.item, _now(), users), replayed=done.replayed)
    if next_:
        nxt = await service.claim_next(session, staff, QueueFilter())
        result.next_item = await service.item_detail(session, staff, nxt) if nxt else None
    return result


@api.get("/moderation/items/{item_id}/events", response_model=list[EventOut],
         responses=error_responses(*STAFF_ERRORS, NotFound))
async def item_events(item_id: uuid.UUID, staff: StaffUser, session: DbSession,
                      page: Annotated[Page, pagination(500, max_limit=1000)]) -> list[EventOut]:
    """The item's history from the append-only moderation event log (the read is access-logged)."""
    return await service.item_events(session, staff, item_id, page.limit, page.offset)


@api.post("/moderation/items/{item_id}/recording", response_model=RecordingOpenOut,
          status_code=status.HTTP_201_CREATED,
          responses=error_responses(*STAFF_ERRORS, NotFound, Unprocessable, recordings.Gone))
async def open_recording(item_id: uuid.UUID, body: RecordingOpenIn, staff: StaffUser,
                         session: DbSession) -> RecordingOpenOut:
    """Open the recording of one of the case's slices (default the first) for playback; written to
    the access log with your reason."""
    opened = await recordings.open_recording(session, staff, item_id, body.reason, body.slice_id)
    sl = await classroom_repo.get_slice(session, opened.slice_id)
    sl_type = sl.content_type if sl is not None else "video/webm"
    base = f"/api/v1/moderation/recordings/{opened.id}"
    return RecordingOpenOut(id=opened.id, media_url=base, frame_url=f"{base}/frame", content_type=sl_type,
                            expires_at=opened.expires_at)


@api.get("/moderation/recordings/{open_id}", response_class=StreamingResponse,
         responses={200: {"content": {"video/webm": {}, "audio/webm": {}}}, 206: {"description": "a byte range"},
                    **error_responses(*STAFF_ERRORS, NotFound, recordings.Gone)})
async def recording_media(open_id: uuid.UUID, request: Request, staff: StaffUser,
                          session: DbSession) -> StreamingResponse:
    """The recording's bytes, with HTTP Range support (the browser plays and seeks)."""
    return await recordings.media(session, staff, open_id, request.headers.get("range"))


@api.get("/moderation/recordings/{open_id}/frame", response_class=Response,
         responses={200: {"content": {"image/jpeg": {}}},
                    **error_responses(*STAFF_ERRORS, NotFound, Unprocessable, recordings.Gone)})
async def recording_frame(open_id: uuid.UUID, staff: StaffUser, session: DbSession,
                          t: Annotated[float, Query(ge=0, le=86_400)] = 0.0) -> Response:
    """A still of a screen recording at ``t`` seconds (JPEG; X-Frame-Width/Height give the pixel
    size the OCR boxes refer to)."""
    jpeg, width, height = await recordings.frame(session, staff, open_id, t)
    return Response(jpeg, media_type="image/jpeg", headers={
        "X-Frame-Width": str(width), "X-Frame-Height": str(height), "Cache-Control": "private, no-store"})


# --- the affected user ------------------------------------------------------------------------------


@api.get("/me/decisions", response_model=list[StatementOfReasons], responses=error_responses(Unauthorized))
async def my_decisions(user: DecisionReader, session: DbSession,
                       page: Annotated[Page, pagination(50, max_limit=200)]) -> list[StatementOfReasons]:
    """Every decision about me, with what was detected, by which rule version, the evidence,
    whether it was automated, the action and how to appeal."""
    return await explanations.my_decisions(session, user, page.limit, page.offset)


@api.get("/me/decisions/{decision_id}", response_model=StatementOfReasons,
         responses=error_responses(Unauthorized, NotFound))
async def my_decision(decision_id: uuid.UUID, user: DecisionReader, session: DbSession) -> StatementOfReasons:
    return await explanations.my_decision(session, user, decision_id)


@api.post("/appeals/session", response_model=AppealSessionOut, status_code=status.HTTP_201_CREATED,
          responses=error_responses(Unauthorized, Conflict, TooManyRequests))
async def appeal_session(body: LoginIn, request: Request, session: DbSession, ip: ClientIP) -> AppealSessionOut:
    """For a suspended or banned account (which cannot log in): a short-lived token that only
    reads the decisions about you and files appeals. 409 for an account that is not restricted."""
    token, expires = await restricted_access.open_session(session, body.identifier, body.password, ip,
                                                          request.headers.get("user-agent"))
    return AppealSessionOut(token=token, expires_at=expires)


@api.post("/appeals", response_model=AppealOut, status_code=status.HTTP_201_CREATED,
          responses=error_responses(Unauthorized, NotFound, Conflict, Unprocessable))
async def file_appeal(body: AppealIn, user: DecisionReader, session: DbSession) -> AppealOut:
    """Appeal a decision about me, once. 404 for a decision that is not about me."""
    return views.appeal_out(await appeals.file_appeal(session, user, body))


@api.get("/appeals/{appeal_id}", response_model=AppealOut, responses=error_responses(Unauthorized, NotFound))
async def get_appeal(appeal_id: uuid.UUID, user: DecisionReader, session: DbSession) -> AppealOut:
    appeal = await appeals.get_appeal_for(session, user, appeal_id, staff=is_staff(user))
    return views.appeal_staff(appeal) if is_staff(user) else views.appeal_out(appeal)


@api.post("/appeals/{appeal_id}/decision", response_model=AppealDecisionResult,
          responses=error_responses(*STAFF_ERRORS, NotFound, Conflict, Unprocessable))
async def decide_appeal(appeal_id: uuid.UUID, body: AppealDecisionIn, staff: StaffUser,
                        session: DbSession) -> AppealDecisionResult:
    """Uphold or overturn (needs your live lease on the appealed item; not for the moderator
    who made the decision)."""
    appeal, item, replayed = await appeals.decide_appeal(session, staff, appeal_id, body)
    users = await _users(session, item.user_id)
    return AppealDecisionResult(appeal=views.appeal_staff(appeal), item=views.queue_item(item, _now(), users),
                                replayed=replayed)


async def _users(session: DbSession, user_id: uuid.UUID | None) -> dict[uuid.UUID, User]:
    return await repo.users_by_ids(session, [user_id])


async def _appeal_of(session: DbSession, decision_id: uuid.UUID) -> Appeal | None:
    return await repo.appeal_of_decision(session, decision_id)


def _now() -> datetime:
    return utcnow()


router = APIRouter()
router.include_router(api)
router.include_router(metrics.router)
