"""HTTP routes of accounts: register, login, logout, me."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from accounts import service
from accounts.auth import SESSION_COOKIE, CurrentAuth, CurrentUser
from accounts.models import Role
from accounts.schemas import LoginIn, LoginOut, RegisterIn, UserOut
from storage.deps import ClientIP, DbSession, RuntimeDep
from storage.errors import (
    Conflict,
    Forbidden,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    error_responses,
)

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.post("/auth/register", status_code=status.HTTP_201_CREATED, response_model=UserOut,
             responses=error_responses(Conflict, Unprocessable))
async def register(body: RegisterIn, session: DbSession, rt: RuntimeDep) -> UserOut:
    """Create a student or teacher account with an e-mail address or a phone number."""
    fields = body.model_dump(exclude={"role", "guardian"})
    new = service.NewUser(**fields, role=Role(body.role), guardian=body.guardian)
    user = await service.register(session, rt.settings, new)
    return service.to_out(user)


@router.post("/auth/login", response_model=LoginOut,
             responses=error_responses(Unauthorized, Forbidden, TooManyRequests))
async def login(body: LoginIn, request: Request, response: Response, session: DbSession, rt: RuntimeDep,
                ip: ClientIP) -> LoginOut:
    """Exchange credentials for an opaque session token (also set as an HttpOnly cookie)."""
    token, auth, user = await service.login(
        session, rt.settings, body.identifier, body.password, ip, request.headers.get("user-agent")
    )
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        max_age=rt.settings.session_ttl_seconds, path="/")
    return LoginOut(token=token, expires_at=auth.expires_at, user=service.to_out(user))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(Unauthorized))
async def logout(auth: CurrentAuth, session: DbSession, response: Response) -> Response:
    """Revoke the current session token."""
    await service.logout(session, auth[0])
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.get("/me", response_model=UserOut, responses=error_responses(Unauthorized, Forbidden))
async def me(user: CurrentUser) -> UserOut:
    """The logged-in user's own profile."""
    return service.to_out(user)
