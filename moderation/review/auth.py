"""Who may do what in review: staff (moderators, admins) work the queue; escalations are for
admins; an appeal goes to anyone on the staff but the person whose decision it contests; a
user sees and appeals only decisions about themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from accounts import service as accounts
from accounts.auth import AdminUser, CurrentUser, StaffUser, token_from_request
from accounts.models import Role, User
from moderation.review import restricted_access
from moderation.review.models import Decision, ItemStatus, ReviewItem
from storage.deps import DbSession
from storage.errors import Forbidden, NotFound, Unauthorized

__all__ = ["AdminUser", "CurrentUser", "DecisionReader", "StaffUser", "check_may_claim", "check_owns_decision",
           "is_admin", "is_staff"]


_bearer = HTTPBearer(auto_error=False, description="a login token, or an appeal token for a restricted account")


async def decision_reader(
    request: Request, session: DbSession,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user reading their decisions or appealing: an ordinary session, or, for a suspended
    or banned account, an appeal token (``POST /api/v1/appeals/session``)."""
    token = token_from_request(request, creds)
    if not token:
        raise Unauthorized("not logged in")
    try:
        return (await accounts.authenticate(session, token))[1]
    except (Unauthorized, accounts.AccountRestricted):
        user = await restricted_access.user_for_token(session, token)
        if user is None:
            raise
        return user


DecisionReader = Annotated[User, Depends(decision_reader)]


def is_admin(user: User) -> bool:
    return user.role == Role.admin.value


def is_staff(user: User) -> bool:
    return user.role in (Role.moderator.value, Role.admin.value)


def check_may_claim(user: User, item: ReviewItem) -> None:
    """403 when this staff member may not work this item (lease questions are the caller's)."""
    if item.status == ItemStatus.escalated.value and not is_admin(user):
        raise Forbidden("this item was escalated; an admin decides it")
    if item.status == ItemStatus.appealed.value and item.excluded_moderator_id == user.id:
        raise Forbidden("you made the decision under appeal; another moderator reviews the appeal")


def check_owns_decision(user: User, decision: Decision | None) -> Decision:
    """A user sees only decisions about themselves; anything else is "not found" (no probing)."""
    if decision is None or decision.subject_user_id != user.id or not decision.visible_to_user:
        raise NotFound("decision not found")
    return decision
