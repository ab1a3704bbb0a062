"""Who may do what in review: staff (moderators, admins) work the queue; escalations are for
admins; an appeal goes to anyone on the staff but the person whose decision it contests; a
user sees and appeals only decisions about themselves."""

from __future__ import annotations

from accounts.auth import AdminUser, CurrentUser, StaffUser
from accounts.models import Role, User
from moderation.review.models import Decision, ItemStatus, ReviewItem
from storage.errors import Forbidden, NotFound

__all__ = ["AdminUser", "CurrentUser", "StaffUser", "check_may_claim", "check_owns_decision", "is_admin", "is_staff"]


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
