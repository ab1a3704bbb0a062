"""Who may do what: the current user from a bearer token or session cookie, and role guards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from accounts import service
from accounts.models import AuthSession, Role, User
from storage.deps import DbSession
from storage.errors import Forbidden, Unauthorized
from storage.runtime import get_runtime

SESSION_COOKIE = "cg_session"
_bearer = HTTPBearer(auto_error=False, description="the token from POST /api/v1/auth/login")


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}".rstrip("/")


def check_cookie_origin(request: Request) -> None:
    """403 for a cookie-authenticated unsafe request from another site (CSRF).

    Browsers send ``Origin`` on every POST/PUT/PATCH/DELETE a page makes; it must be this
    server's own origin (scheme and host as the request arrived) or one of ``allowed_origins``.
    A missing or ``null`` Origin is refused too: only a browser sends the cookie on its own,
    and scripts use the bearer token. SameSite=Strict already stops most cross-site sends;
    this holds where SameSite does not (older browsers, sibling subdomains).
    """
    if request.method.upper() in _SAFE_METHODS:
        return
    origin = request.headers.get("origin", "").rstrip("/")
    allowed = {o.rstrip("/") for o in get_runtime().settings.allowed_origins}
    if origin and origin != "null" and (origin == _own_origin(request) or origin in allowed):
        return
    raise Forbidden("cross-origin request with a session cookie (Origin "
                    f"{origin or 'missing'}); use the bearer token or this server's own pages")


def token_from_request(request: Request, creds: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token, else the session cookie (an unsafe request with the cookie must come
    from our own origin, see ``check_cookie_origin``)."""
    if creds is not None and creds.scheme.lower() == "bearer":
        return creds.credentials
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        check_cookie_origin(request)
    return token


def cookie_secure(request: Request) -> bool:
    """Whether the session cookie gets ``Secure``: the setting, or the request came over https."""
    return get_runtime().settings.session_cookie_secure or request.url.scheme == "https"


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
