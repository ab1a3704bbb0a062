"""The live nudge: seconds after a sure contact or payment hit, the speaker is told in the class
that this is not allowed and that the class is recorded for review; the teacher sees it was shown.

Each rule's ``live_action`` in the policy says what a hit does in the live class: ``off``,
``nudge`` or ``nudge_restrict`` (the notice plus the automated mute pending review). A rule
without one nudges when it is a contact or payment rule. Hits below the policy's
``live_min_confidence`` never act live. The notice goes through the classroom's own service
(``notify_participant``: control log + the participant's signaling socket after commit); here
it becomes an event of the case, so the moderator sees that the speaker was warned.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from classroom import service as classroom
from moderation.models import Category, Flag
from moderation.review import events_log
from moderation.review import repository as repo
from moderation.review.events_log import EventKind
from moderation.review.models import ReviewItem
from moderation.rules import Policy
from storage.db import utcnow
from storage.errors import AppError

log = logging.getLogger("classguard.moderation.review")

NUDGE_KIND = "moderation_nudge"
NUDGE_TEXTS = {
    "en": ("Sharing contact details or arranging payment outside the platform is not allowed; "
           "this class is recorded for review."),
    "zh": "平台内禁止分享联系方式或安排平台外付款；本课堂已录制以供审核。",
}
NUDGING_CATEGORIES = frozenset({Category.off_platform_contact.value, Category.payment_bypass.value})
# A slide left on screen flags every slice: one notice per case in this long, not one per slice.
REPEAT_AFTER = timedelta(minutes=5)


def live_action(policy: Policy, flag: Flag) -> str:
    """What this hit does in the live class under ``policy``: off, nudge or nudge_restrict."""
    try:
        configured = policy.rule(flag.rule_id).spec.live_action
    except KeyError:  # a rule since removed from the policy
        configured = None
    action = configured or ("nudge" if flag.category in NUDGING_CATEGORIES else "off")
    if action != "off" and flag.confidence < policy.live_min_confidence:
        return "off"
    return action


async def nudge(session: AsyncSession, item: ReviewItem, fresh: Sequence[Flag], policy: Policy) -> list[Flag]:
    """Nudge the speaker for the case's new hits if the policy asks to; returns the hits whose
    rule also wants the automated restriction (``nudge_restrict``)."""
    actions = {f.id: live_action(policy, f) for f in fresh}
    acting = [f for f in fresh if actions[f.id] != "off"]
    restricting = [f for f in acting if actions[f.id] == "nudge_restrict"]
    if not acting or item.session_id is None or item.user_id is None:
        return restricting
    last = await repo.last_event_of_item(session, item.id, EventKind.live_nudge.value)
    if last is not None and utcnow() - last.at < REPEAT_AFTER:
        return restricting
    top = max(acting, key=lambda f: (f.confidence, f.severity_rank))
    try:
        delivered = await classroom.notify_participant(
            session, item.session_id, item.user_id, kind=NUDGE_KIND, texts=NUDGE_TEXTS,
            reason=f"policy {top.policy_version}: {top.rule_id} (confidence {top.confidence:.2f})",
            details={"category": item.category, "case_id": str(item.id)})
    except AppError as exc:  # the class is over, or they were never in it: nothing to show live
        log.info("no live nudge for case %s: %s", item.id, exc.detail)
        return restricting
    note = "" if delivered else "stored; the participant is not connected to this relay node"
    await events_log.append(
        session, EventKind.live_nudge, actor_id=None, actor_role="system", item_id=item.id,
        subject_user_id=item.user_id, rule_id=top.rule_id, flag_id=top.id, confidence=top.confidence,
        live_action=actions[top.id], delivered=delivered, note=note, texts=NUDGE_TEXTS)
    return restricting
