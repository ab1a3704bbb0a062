"""Connects domain hooks that must not import each other (e.g. classroom → moderation)."""

from __future__ import annotations

import importlib.util

from moderation import service as moderation_service

# A closed recorder segment (a slice row) starts its moderation pipeline in the same transaction.
if importlib.util.find_spec("classroom.events") is not None:
    from classroom import events as classroom_events

    if moderation_service.on_slice_created not in classroom_events.slice_created_hooks:
        classroom_events.slice_created_hooks.append(moderation_service.on_slice_created)

# Stored flags become review items (and the policy's automated restrictions) in the same
# transaction; review also holds evidence media, unlinks cancelled people and exports decisions.
if importlib.util.find_spec("moderation.review") is not None:
    from accounts import events as accounts_events
    from moderation import events as moderation_events
    from moderation.review import intake as review_intake
    from moderation.review import privacy as review_privacy
    from storage import retention

    if review_intake.on_flags_stored not in moderation_events.flags_stored_hooks:
        moderation_events.flags_stored_hooks.append(review_intake.on_flags_stored)
    retention.register_hold("moderation_review", review_privacy.retention_hold)
    if review_privacy.on_account_cancelled not in accounts_events.cancellation_hooks:
        accounts_events.cancellation_hooks.append(review_privacy.on_account_cancelled)
    if review_privacy.export_section not in accounts_events.export_providers:
        accounts_events.export_providers.append(review_privacy.export_section)
