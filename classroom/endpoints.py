"""HTTP and WebSocket routes of the classroom: classes, enrollment, live sessions, controls,
the consent/recording trail, slices, and the relay's signaling socket."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Response, WebSocket, status
from fastapi.responses import JSONResponse

from accounts import service as accounts_service
from accounts.auth import SESSION_COOKIE, CurrentAuth, CurrentUser, StaffUser, TeacherUser
from accounts.models import AuthSession, User
from classroom import auth, live, live_control, service
from classroom.schemas import (
    ClassIn,
    ClassOut,
    ControlEventOut,
    ControlIn,
    ControlOut,
    EnrollmentOut,
    IceConfigOut,
    JoinOut,
    MuteIn,
    OfferCheckIn,
    OfferCheckOut,
    OfferedMediaOut,
    ParticipantOut,
    ProcessStatsOut,
    RecordingEventOut,
    SessionOut,
    SliceOut,
)
from classroom.signaling import Channel, ChannelClosed, StarletteChannel, parse_offer
from storage.db import unit_of_work
from storage.deps import DbSession, RuntimeDep
from storage.errors import AppError, BadRequest, Conflict, Forbidden, NotFound, Unauthorized, error_responses
from storage.pagination import Page, pagination
from storage.runtime import Runtime, get_runtime

log = logging.getLogger("classguard.classroom")

router = APIRouter(prefix="/api/v1", tags=["classroom"])


def _signal_path(session_id: uuid.UUID) -> str:
    return f"/api/v1/sessions/{session_id}/signal"


async def _join_out(session: DbSession, rt: Runtime, ls: Any, role: str, auth_row: AuthSession) -> JoinOut:
    """Where to connect, with a fresh single-use join ticket in the URL (never the login token)."""
    path = _signal_path(ls.id)
    node = await live.host_of(rt, ls.id)
    ticket, expires = await service.issue_join_ticket(session, ls.id, auth_row.user_id, auth_row.id,
                                                      rt.settings.join_ticket_ttl_seconds)
    url = f"{node.public_url.rstrip('/')}{path}" if node.public_url else path
    return JoinOut(session=SessionOut.model_validate(ls), role=role,  # type: ignore[arg-type]
                   signal_path=path, signal_url=f"{url}?{urlencode({'ticket': ticket})}", ticket_expires_at=expires,
                   relay_node=node.id, ice_servers=rt.settings.ice_servers)


# --- classes ----------------------------------------------------------------------------------------


@router.post("/classes", status_code=status.HTTP_201_CREATED, response_model=ClassOut,
             responses=error_responses(Unauthorized, Forbidden))
async def create_class(body: ClassIn, session: DbSession, teacher: TeacherUser) -> ClassOut:
    """A teacher creates (and optionally schedules) a class."""
    cls = await service.create_class(session, teacher, body)
    return (await service.to_out(session, [cls]))[0]


@router.get("/classes", response_model=list[ClassOut], responses=error_responses(Unauthorized))
async def list_classes(session: DbSession, user: CurrentUser,
                       page: Annotated[Page, pagination(100)]) -> list[ClassOut]:
    """Your classes: a teacher's own, a student's enrolled ones (staff: all)."""
    return await service.to_out(session, await service.list_classes(session, user, page.limit, page.offset))


@router.get("/classes/{class_id}", response_model=ClassOut, responses=error_responses(Unauthorized, NotFound))
async def get_class(class_id: uuid.UUID, session: DbSession, _: CurrentUser) -> ClassOut:
    """A class's title and schedule (what a student sees before enrolling)."""
    return (await service.to_out(session, [await service.get_class(session, class_id)]))[0]


@router.post("/classes/{class_id}/enroll", status_code=status.HTTP_201_CREATED, response_model=EnrollmentOut,
             responses={200: {"description": "already enrolled", "model": EnrollmentOut},
                        **error_responses(Unauthorized, Forbidden, NotFound)})
async def enroll(class_id: uuid.UUID, session: DbSession, user: CurrentUser, response: Response) -> EnrollmentOut:
    """A student enrolls in a class (201; 200 if already enrolled)."""
    enrollment, created = await service.enroll(session, class_id, user)
    if not created:
        response.status_code = status.HTTP_200_OK
    return EnrollmentOut.model_validate(enrollment)


@router.get("/classes/{class_id}/enrollments", response_model=list[EnrollmentOut],
            responses=error_responses(Unauthorized, Forbidden, NotFound))
async def enrollments(class_id: uuid.UUID, session: DbSession, user: CurrentUser) -> list[EnrollmentOut]:
    """The class's students (its teacher and staff)."""
    cls = await service.get_class(session, class_id)
    return [EnrollmentOut.model_validate(e) for e in await service.enrollments_of(session, cls, user)]


# --- live sessions ----------------------------------------------------------------------------------


@router.post("/classes/{class_id}/session", status_code=status.HTTP_201_CREATED, response_model=SessionOut,
             responses={200: {"description": "already live", "model": SessionOut},
                        **error_responses(Unauthorized, Forbidden, NotFound)})
async def start_session(class_id: uuid.UUID, session: DbSession, user: CurrentUser,
                        response: Response) -> SessionOut:
    """The teacher starts the class's live session (201; 200 with the running one if already live)."""
    cls = await service.get_class(session, class_id)
    auth.require_teacher_of(cls, user)
    ls, created = await service.start_session(session, cls, user)
    if not created:
        response.status_code = status.HTTP_200_OK
    return SessionOut.model_validate(ls)


@router.post("/classes/{class_id}/session/end", response_model=SessionOut,
             responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict))
async def end_class_session(class_id: uuid.UUID, session: DbSession, user: CurrentUser,
                            body: ControlIn | None = None) -> SessionOut:
    """End the class's live session (its teacher or a moderator); 409 if none is live."""
    cls = await service.get_class(session, class_id)
    auth.require_can_moderate(cls, user)
    ls = await service.live_session_of(session, class_id)
    if ls is None:
        raise Conflict("this class has no live session")
    ended = await service.end_session(session, ls.id, user.id, body.reason if body else None)
    return SessionOut.model_validate(ended)


@router.post("/classes/{class_id}/join", response_model=JoinOut,
             responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict))
async def join_class(class_id: uuid.UUID, session: DbSession, current: CurrentAuth, rt: RuntimeDep) -> JoinOut:
    """Join the class's live session (the first join starts it): teacher and enrolled students only.
    ``signal_url`` carries a single-use join ticket for the signaling socket."""
    auth_row, user = current
    ls, role = await service.join_class(session, class_id, user)
    return await _join_out(session, rt, ls, role, auth_row)


@router.get("/sessions/{session_id}", response_model=SessionOut,
            responses=error_responses(Unauthorized, Forbidden, NotFound))
async def get_session(session_id: uuid.UUID, session: DbSession, user: CurrentUser) -> SessionOut:
    ls, cls = await service.get_session(session, session_id)
    if not auth.is_staff(user):
        await auth.join_role(session, cls, user)
    return SessionOut.model_validate(ls)


@router.post("/sessions/{session_id}/join", response_model=JoinOut,
             responses=error_responses(Unauthorized, Forbidden, NotFound, Conflict))
async def join_session(session_id: uuid.UUID, session: DbSession, current: CurrentAuth,
                       rt: RuntimeDep) -> JoinOut:
    """Check that you may connect to this session now (the WebSocket applies the same rules):
    403 unless teacher or enrolled (or if removed), 409 if it has ended. ``signal_url`` carries a
    single-use join ticket for the signaling socket."""
    auth_row, user = current
    ls, _, role = await service.authorize_join(session, session_id, user)
    return await _join_out(session, rt, ls, role, auth_row)


@router.get("/sessions/{session_id}/participants", response_model=list[ParticipantOut],
            responses=error_responses(Unauthorized, Forbidden, NotFound))
async def participants(session_id: uuid.UUID, session: DbSession, user: CurrentUser) -> list[ParticipantOut]:
    """Every stay in the session (join and leave times)."""
    return [ParticipantOut.model_validate(p) for p in await service.participants(session, session_id, user)]


@router.get("/sessions/{session_id}/live", responses=error_responses(Unauthorized, Forbidden, NotFound))
async def live_state(session_id: uuid.UUID, session: DbSession, user: CurrentUser) -> dict[str, Any]:
    """Who is connected right now and what is being recorded (the relay's own state)."""
    return {"session_id": str(session_id), "participants": await service.live_participants(session, session_id, user)}


# --- controls -----------------------------------------------------------------------------------------


async def _moderated_session(session: DbSession, session_id: uuid.UUID, user: Any) -> None:
    _, cls = await service.get_session(session, session_id)
    auth.require_can_moderate(cls, user)


_CONTROL_ERRORS = error_responses(Unauthorized, Forbidden, NotFound, Conflict)


@router.post("/sessions/{session_id}/participants/{user_id}/mute", response_model=ControlOut,
             responses=_CONTROL_ERRORS)
async def mute(session_id: uuid.UUID, user_id: uuid.UUID, session: DbSession, user: CurrentUser,
               body: MuteIn | None = None) -> ControlOut:
    """Mute a participant's source (default mic): not forwarded, not recorded, until unmuted."""
    body = body or MuteIn()
    await _moderated_session(session, session_id, user)
    applied = await service.mute_participant(session, session_id, user_id, user.id, body.reason, body.source)
    return ControlOut(session_id=session_id, user_id=user_id, action="mute", applied_live=applied)


@router.post("/sessions/{session_id}/participants/{user_id}/unmute", response_model=ControlOut,
             responses=_CONTROL_ERRORS)
async def unmute(session_id: uuid.UUID, user_id: uuid.UUID, session: DbSession, user: CurrentUser,
                 body: MuteIn | None = None) -> ControlOut:
    body = body or MuteIn()
    await _moderated_session(session, session_id, user)
    applied = await service.unmute_participant(session, session_id, user_id, user.id, body.reason, body.source)
    return ControlOut(session_id=session_id, user_id=user_id, action="unmute", applied_live=applied)


@router.post("/sessions/{session_id}/participants/{user_id}/remove", response_model=ControlOut,
             responses=_CONTROL_ERRORS)
async def remove(session_id: uuid.UUID, user_id: uuid.UUID, session: DbSession, user: CurrentUser,
                 body: ControlIn | None = None) -> ControlOut:
    """Disconnect a participant; they cannot rejoin this session unless readmitted."""
    await _moderated_session(session, session_id, user)
    applied = await service.remove_participant(session, session_id, user_id, user.id, body.reason if body else None)
    return ControlOut(session_id=session_id, user_id=user_id, action="remove", applied_live=applied)


@router.post("/sessions/{session_id}/participants/{user_id}/readmit", response_model=ControlOut,
             responses=_CONTROL_ERRORS)
async def readmit(session_id: uuid.UUID, user_id: uuid.UUID, session: DbSession, user: CurrentUser,
                  body: ControlIn | None = None) -> ControlOut:
    """Undo a removal: the participant may join this session again (a moderator's mutes still hold).
    404 if they never joined, 409 if they are not removed or the session has ended."""
    await _moderated_session(session, session_id, user)
    await service.readmit_participant(session, session_id, user_id, user.id, body.reason if body else None)
    return ControlOut(session_id=session_id, user_id=user_id, action="readmit",
                      applied_live=live.is_connected(session_id, user_id))


@router.get("/sessions/{session_id}/control-events", response_model=list[ControlEventOut],
            responses=error_responses(Unauthorized, Forbidden, NotFound))
async def control_events(session_id: uuid.UUID, session: DbSession, user: CurrentUser) -> list[ControlEventOut]:
    """Every mute, unmute, removal and readmission (participants see the ones applied to them;
    the teacher and staff see all)."""
    return [ControlEventOut.model_validate(e) for e in await service.control_events(session, session_id, user)]


@router.post("/sessions/{session_id}/end", response_model=SessionOut, responses=_CONTROL_ERRORS)
async def end_session(session_id: uuid.UUID, session: DbSession, user: CurrentUser,
                      body: ControlIn | None = None) -> SessionOut:
    """End the live session for everyone (409 if it has already ended)."""
    ls, cls = await service.get_session(session, session_id)
    auth.require_can_moderate(cls, user)
    if ls.status != "live":
        raise Conflict("this live session has already ended")
    return SessionOut.model_validate(await service.end_session(session, session_id, user.id,
                                                               body.reason if body else None))


# --- trail and slices ---------------------------------------------------------------------------------


@router.get("/sessions/{session_id}/recording-events", response_model=list[RecordingEventOut],
            responses=error_responses(Unauthorized, Forbidden, NotFound))
async def recording_events(session_id: uuid.UUID, session: DbSession, user: CurrentUser) -> list[RecordingEventOut]:
    """Every on/off of every source (participants see their own; the teacher and staff see all)."""
    return [RecordingEventOut.model_validate(e) for e in await service.recording_events(session, session_id, user)]


@router.get("/sessions/{session_id}/slices", response_model=list[SliceOut],
            responses=error_responses(Unauthorized, Forbidden, NotFound))
async def session_slices(session_id: uuid.UUID, session: DbSession, staff: StaffUser,
                         page: Annotated[Page, pagination(500)]) -> list[SliceOut]:
    """The recorded slices of a session (staff; access-logged)."""
    rows = await service.list_slices(session, session_id=session_id, limit=page.limit, offset=page.offset,
                                     reader=staff)
    return [SliceOut.model_validate(s) for s in rows]


@router.get("/slices", response_model=list[SliceOut], responses=error_responses(Unauthorized, Forbidden))
async def list_slices(
    session: DbSession, staff: StaffUser, page: Annotated[Page, pagination(100)],
    class_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None,
    source: Annotated[str | None, Query(pattern="^(mic|screen|snapshot)$")] = None,
    slice_status: Annotated[str | None, Query(alias="status", pattern="^(pending|processing|done|failed)$")] = None,
) -> list[SliceOut]:
    """Slices across sessions, filtered (staff; access-logged)."""
    rows = await service.list_slices(session, class_id=class_id, user_id=user_id, source=source,
                                     status=slice_status, limit=page.limit, offset=page.offset, reader=staff)
    return [SliceOut.model_validate(s) for s in rows]


@router.get("/slices/{slice_id}", response_model=SliceOut, responses=error_responses(Unauthorized, Forbidden, NotFound))
async def get_slice(slice_id: uuid.UUID, session: DbSession, staff: StaffUser) -> SliceOut:
    return SliceOut.model_validate(await service.get_slice(session, slice_id, reader=staff))


# --- signaling ------------------------------------------------------------------------------------------


@router.post("/sessions/{session_id}/offer-check", response_model=OfferCheckOut,
             responses=error_responses(BadRequest, Unauthorized))
async def offer_check(session_id: uuid.UUID, body: OfferCheckIn, _: CurrentUser) -> OfferCheckOut:
    """Validate a publish offer without connecting: 400 for malformed SDP, or for an m-line with
    no usable codec (the detail names the codecs the relay accepts: Opus and VP8)."""
    media = parse_offer(body.sdp)
    return OfferCheckOut(media=[OfferedMediaOut(mid=m.mid, kind=m.kind, direction=m.direction, codecs=m.codecs)
                                for m in media], accepted_codecs={"audio": "opus", "video": "VP8"})


@router.get("/config/ice", response_model=IceConfigOut, responses=error_responses(Unauthorized))
async def ice_config(_: CurrentUser, rt: RuntimeDep) -> IceConfigOut:
    """The ICE (STUN/TURN) servers clients should use."""
    return IceConfigOut(ice_servers=rt.settings.ice_servers)


@router.get("/ops/relay-stats", response_model=ProcessStatsOut, responses=error_responses(Unauthorized, Forbidden))
async def relay_stats(_: StaffUser) -> ProcessStatsOut:
    """CPU seconds and memory of the serving process, rooms and participants on its relay (staff)."""
    return ProcessStatsOut(**live.process_stats())


class _Unavailable(AppError):
    status, error = 503, "Unavailable"


def _same_origin(websocket: WebSocket) -> bool:
    """A cookie-authenticated socket must come from our own pages (no cross-site hijacking)."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True  # not a browser
    host = websocket.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


async def _deny(websocket: WebSocket, exc: AppError) -> None:
    """Refuse a socket with the error shape: an HTTP response before the upgrade when the server
    supports it, else an accepted socket that sends the error and closes with 4000 + status."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(exc.to_json(), status_code=exc.status))
        return
    await websocket.accept()
    await websocket.send_json({"type": "error", **exc.to_json(), "status": exc.status})
    await websocket.close(code=4000 + exc.status)


@router.websocket("/sessions/{session_id}/signal")
async def signal(websocket: WebSocket, session_id: str) -> None:
    """The relay's signaling channel (JSON messages, see ``classroom.signaling``).

    Browsers cannot set headers on a WebSocket, so the socket takes ``?ticket=`` (the single-use
    join ticket from ``POST …/join``) or the ``cg_session`` cookie from our own origin. A login
    token in the URL is refused (URLs end up in logs). Refused before the upgrade with the error
    shape: 400/401/403/404/409 (the HTTP twin ``POST /sessions/{id}/join`` answers the same
    question with a readable body).
    """
    rt = get_runtime()
    params = websocket.query_params
    try:  # parsed here, not by FastAPI, so a bad id is refused with the error shape too
        live_id = uuid.UUID(session_id)
    except ValueError:
        await _deny(websocket, NotFound("live session not found"))
        return
    if "token" in params:
        await _deny(websocket, BadRequest("a login token is not accepted in the URL; POST /api/v1/sessions/"
                                          "{id}/join and connect to its signal_url (a single-use join ticket)"))
        return
    ticket = params.get("ticket")
    token = None if ticket else websocket.cookies.get(SESSION_COOKIE)
    if token and not _same_origin(websocket):
        await _deny(websocket, Forbidden("cross-origin WebSocket with a session cookie"))
        return
    authorized_at = time.monotonic()  # before anything is read: a sanction after this refuses the socket
    try:
        if not ticket and not token:
            raise Unauthorized("not logged in: connect with the join ticket from POST …/join")
        relay = live.relay_of(rt)
        if relay is None:
            raise _Unavailable("the live relay is not running in this process")
        host = await live.host_of(rt, live_id)
        if not live.is_this_node(rt, host):
            raise Conflict(f"this class is hosted on relay node {host.id}; connect to "
                           f"{host.public_url.rstrip('/')}{_signal_path(live_id)}")
        async with unit_of_work(rt.sessionmaker) as session:
            auth_row, user = await _socket_user(session, live_id, ticket, token)
            ls, _, role = await service.authorize_join(session, live_id, user)
            stay = await service.participant_joined(session, ls.id, user.id, role)
            user_id, display_name, stay_id, auth_id = user.id, user.display_name, stay.id, auth_row.id
    except AppError as exc:
        await _deny(websocket, exc)
        return
    await websocket.accept()
    await attend(rt, live_id, user_id, display_name, role, stay_id, StarletteChannel(websocket),
                 auth_session_id=auth_id, authorized_at=authorized_at)


async def _socket_user(session: DbSession, session_id: uuid.UUID, ticket: str | None,
                       token: str | None) -> tuple[AuthSession, User]:
    """Who opens the socket: a ticket names its login token, which must still be valid now
    (logged out, suspended, banned or cancelled since: refused)."""
    if ticket:
        auth_session_id = await service.redeem_join_ticket(session, ticket, session_id)
        return await accounts_service.authenticate_session_id(session, auth_session_id)
    assert token is not None
    return await accounts_service.authenticate(session, token)


async def attend(rt: Runtime, session_id: uuid.UUID, user_id: uuid.UUID, display_name: str, role: str,
                 stay_id: uuid.UUID, channel: Channel, *, auth_session_id: uuid.UUID | None = None,
                 authorized_at: float | None = None) -> None:
    """Run one authorised participant's connection on the relay and close their stay after it.

    The connection is registered with the live control path (``classroom.live_control``) for its
    whole life, so a sanction or sign-out finds and closes it."""
    relay = live.relay_of(rt)
    control = live_control.control_of(rt)
    conn = live_control.Connection(session_id, user_id, auth_session_id,
                                   authorized_at if authorized_at is not None else time.monotonic())
    try:
        if relay is None:
            raise _Unavailable("the live relay is not running in this process")
        if not control.admit(conn):
            # signed out or sanctioned while this connection was being authorised
            conn.ended_reason = service.REMOVED_RESTRICTED
            with contextlib.suppress(ChannelClosed):
                await channel.send({"type": "removed", "reason": service.REMOVED_RESTRICTED})
            await channel.close()
            return
        await relay.connect(session_id, user_id, display_name, role, channel)
    finally:
        control.release(conn)
        async with unit_of_work(rt.sessionmaker) as session:
            await service.participant_left(session, stay_id, conn.ended_reason or "left")
