"""Connects domain hooks that must not import each other (imports point one way:
storage ← accounts ← classroom ← moderation). Imported once by ``bootstrap.load_domains``."""

from __future__ import annotations

from typing import Any

from accounts import events as accounts_events
from classroom import events as classroom_events
from classroom import privacy as classroom_privacy
from classroom import service as classroom_service
from moderation import events as moderation_events
from moderation import privacy as moderation_privacy
from moderation import service as moderation_service
from moderation.review import intake as review_intake
from moderation.review import privacy as review_privacy
from storage import retention


def _add(hooks: list[Any], fn: Any) -> None:
    if fn not in hooks:
        hooks.append(fn)


# A closed recorder segment (a slice row) starts its moderation pipeline in the same transaction.
_add(classroom_events.slice_created_hooks, moderation_service.on_slice_created)

# Stored flags become review items (and the policy's automated restrictions) in the same transaction.
_add(moderation_events.flags_stored_hooks, review_intake.on_flags_stored)

# Retention (promise 4): slice media expires; evidence in an open case is held.
retention.register_source(classroom_privacy.SliceMediaRetention())
retention.register_hold("moderation_review", review_privacy.retention_hold)

# Cancellation (promise 5) and export (promise 6): each domain handles its own data.
_add(accounts_events.cancellation_hooks, classroom_privacy.on_user_cancelled)
_add(accounts_events.cancellation_hooks, moderation_privacy.on_user_cancelled)
_add(accounts_events.cancellation_hooks, review_privacy.on_account_cancelled)
_add(accounts_events.export_providers, classroom_privacy.export_user)
_add(accounts_events.export_providers, moderation_privacy.export_user)
_add(accounts_events.export_providers, review_privacy.export_section)

# A sign-out, suspension, ban or cancellation (after its commit) closes the user's live connections.
_add(accounts_events.sign_out_hooks, classroom_service.on_sign_out)
