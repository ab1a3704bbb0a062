"""Who may do what: the current user from a bearer token or session cookie, and role guards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from accounts import service
from accounts.models import AuthSession, Role, User
from storage.deps import DbSession
from storage.errors import Unauthorized

SESSION_COOKIE = "cg_session"
_bearer = HTTPBearer(auto_error=False, description="the token from POST /api/v1/auth/login")


def token_from_request(request: Request, creds: HTTPAuthorizationCredentials | None) -> str | None:
    if creds is not None and creds.scheme.lower() == "bearer":
        return creds.credentials
    return request.cookies.get(SESSION_COOKIE)


async def current_auth(
    request: Request,
    session: DbSession,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> tuple[AuthSession, User]:
    token = token_from_request(request, creds)
    if not token:
        raise Unauthorized("not logged in")
    return await service.authenticate(session, token)


CurrentAuth = Annotated[tuple[AuthSession, User], Depends(current_auth)]


async def current_user(auth: CurrentAuth) -> User:
    return auth[1]


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: Role) -> Callable[[User], Awaitable[User]]:
    """A dependency that answers 403 unless the current user has one of ``roles``."""

    async def _check(user: CurrentUser) -> User:
        service.require_role(user, *roles)
        return user

    return _check


StaffUser = Annotated[User, Depends(require_roles(Role.moderator, Role.admin))]
AdminUser = Annotated[User, Depends(require_roles(Role.admin))]
TeacherUser = Annotated[User, Depends(require_roles(Role.teacher))]
