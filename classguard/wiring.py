"""Connects domain hooks that must not import each other (e.g. classroom → moderation)."""

from __future__ import annotations

import importlib.util

from moderation import service as moderation_service

# A closed recorder segment (a slice row) starts its moderation pipeline in the same transaction.
if importlib.util.find_spec("classroom.events") is not None:
    from classroom import events as classroom_events

    if moderation_service.on_slice_created not in classroom_events.slice_created_hooks:
        classroom_events.slice_created_hooks.append(moderation_service.on_slice_created)
