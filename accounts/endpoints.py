"""HTTP routes of accounts: register, login, logout, me."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from accounts import registration, service
from accounts.auth import SESSION_COOKIE, AdminUser, CurrentAuth, CurrentUser, StaffUser, cookie_secure
from accounts.models import Role, UserStatus
from accounts.notices import pick_language
from accounts.registration import InvalidCode
from accounts.schemas import (
    AccessEntryOut,
    CancelIn,
    LoginIn,
    LoginOut,
    RegisterAccepted,
    RegisterIn,
    UserOut,
    UserSummary,
    VerifyIn,
)
from storage.deps import ClientIP, DbSession, RuntimeDep
from storage.errors import (
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    error_responses,
)
from storage.fields import StoredText
from storage.pagination import Page, pagination

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post("/auth/register", status_code=status.HTTP_202_ACCEPTED, response_model=RegisterAccepted,
             responses=error_responses(Unprocessable, TooManyRequests))
async def register(body: RegisterIn, request: Request, rt: RuntimeDep, ip: ClientIP) -> RegisterAccepted:
    """Start a student or teacher account with an e-mail address or a phone number.

    A one-time code goes to the address; the account exists once it is confirmed with
    ``POST /auth/register/verify``. The answer is the same whether or not the address already
    has an account (its owner is told someone tried)."""
    fields = body.model_dump(exclude={"role", "guardian", "language"})
    language = pick_language(request.headers.get("accept-language"), body.language)
    new = service.NewUser(**fields, role=Role(body.role), guardian=body.guardian, language=language)
    await registration.start(rt, new, ip)
    return RegisterAccepted(detail=registration.ACCEPTED)


@router.post("/auth/register/verify", status_code=status.HTTP_201_CREATED, response_model=UserOut,
             responses=error_responses(InvalidCode))
async def verify_registration(body: VerifyIn, rt: RuntimeDep) -> UserOut:
    """Confirm the address with its one-time code: the account is created and can sign in."""
    user = await registration.verify(rt, body.identifier, body.code)
    return service.to_out(user)


@router.post("/auth/login", response_model=LoginOut,
             responses=error_responses(Unauthorized, Forbidden, TooManyRequests, ServiceUnavailable))
async def login(body: LoginIn, request: Request, response: Response, rt: RuntimeDep, ip: ClientIP) -> LoginOut:
    """Exchange credentials for an opaque session token (also set as an HttpOnly cookie).

    No request-wide session: the service runs its own two short transactions (see there)."""
    token, auth, user = await service.login(rt, body.identifier, body.password, ip,
                                            request.headers.get("user-agent"))
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=cookie_secure(request),
                        max_age=rt.settings.session_ttl_seconds, path="/")
    return LoginOut(token=token, expires_at=auth.expires_at, user=service.to_out(user))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(Unauthorized))
async def logout(auth: CurrentAuth, session: DbSession, request: Request, response: Response) -> Response:
    """Revoke the current session token."""
    await service.logout(session, auth[0])
    _forget_cookie(request, response)
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.get("/me", response_model=UserOut, responses=error_responses(Unauthorized, Forbidden))
async def me(user: CurrentUser) -> UserOut:
    """The logged-in user's own profile."""
    return service.to_out(user)


@router.get("/me/access-log", response_model=list[AccessEntryOut], responses=error_responses(Unauthorized))
async def my_access_log(user: CurrentUser, session: DbSession) -> list[AccessEntryOut]:
    """Who on the staff read my personal data, when and why (privacy promise 3)."""
    from storage.access_log.service import entries_about

    rows = await entries_about(session, user.id)
    return [AccessEntryOut(at=r.at, actor_role=r.actor_role, action=r.action, resource_type=r.resource_type,
                           reason=r.reason) for r in rows]


@router.get("/users", response_model=list[UserSummary], responses=error_responses(Unauthorized, Forbidden))
async def list_users(
    admin: AdminUser, session: DbSession,
    page: Annotated[Page, pagination(50)],
    role: Role | None = None, status: UserStatus | None = None,
) -> list[UserSummary]:
    """Admins list accounts (without contact data); every account listed is access-logged."""
    users = await service.list_users(session, admin, role, status, page.limit, page.offset)
    return [UserSummary(id=u.id, display_name=u.display_name, role=Role(u.role), status=u.status,
                        created_at=u.created_at) for u in users]


@router.get("/users/{user_id}", response_model=UserOut,
            responses=error_responses(Unauthorized, Forbidden, NotFound, Unprocessable))
async def read_user(
    user_id: uuid.UUID, staff: StaffUser, session: DbSession,
    reason: Annotated[StoredText, Query(min_length=3, max_length=2000, description="why you need this person's data")],
) -> UserOut:
    """Staff read a user's profile with contact data; the read is logged with the reason."""
    return await service.staff_read_user(session, staff, user_id, reason)


@router.get("/me/export", responses=error_responses(Unauthorized))
async def export_my_data(user: CurrentUser, session: DbSession) -> dict[str, object]:
    """Download a copy of my personal data (JSON)."""
    return await service.export_data(session, user)


@router.post("/me/cancel", status_code=status.HTTP_204_NO_CONTENT,
             responses=error_responses(Unauthorized, Unprocessable))
async def cancel_my_account(body: CancelIn, user: CurrentUser, session: DbSession, request: Request,
                            response: Response) -> Response:
    """Cancel my account: personal data is deleted or anonymised, except what law requires to keep."""
    await service.cancel_account(session, user, body.password)
    _forget_cookie(request, response)
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


def _forget_cookie(request: Request, response: Response) -> None:
    # Same attributes as when it was set: a browser replaces a Secure cookie only with a Secure one.
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=cookie_secure(request))
